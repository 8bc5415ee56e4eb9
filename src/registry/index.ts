export { type DecodedEntry, decodeEntry } from './decode.ts';
export {
  createEmbeddedStore,
  DEFAULT_HISTORY_LIMIT,
  DEFAULT_POLL_INTERVAL_MS,
  type EmbeddedStore,
  type EmbeddedStoreOptions,
} from './embedded-store.ts';
export {
  createEtcdStore,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_DIAL_TIMEOUT_MS,
  type EtcdStore,
  type EtcdStoreOptions,
} from './etcd-store.ts';
export { DEFAULT_PREFIX, KeyKind, keyFor, parseKey, prefixFor } from './keys.ts';
export { LEASED_RETRY_INITIAL_MS, LEASED_RETRY_MAX_MS } from './leased-record.ts';
export {
  DEFAULT_ETCD_PORT,
  type OpenStoreOptions,
  openStore,
  parseStoreSpec,
  type StoreSpec,
} from './open.ts';
export {
  type DispatcherStatus,
  decodeDispatcherStatus,
  decodeIntent,
  decodeNodeRecord,
  decodeStaticNode,
  dispatcherStatusSchema,
  type Intent,
  type IntentInput,
  intentSchema,
  MAX_RECORD_BYTES,
  NODE_ID_PATTERN,
  NODE_STATES,
  type NodeRecord,
  type NodeRecordInput,
  type NodeState,
  nodeRecordSchema,
  SIP_URI_PATTERN,
  type StaticNode,
  type StaticNodeInput,
  staticNodeSchema,
  weightSchema,
} from './records.ts';
export {
  type AnnounceInput,
  type Announcement,
  type AnnounceOptions,
  createRegistry,
  DEFAULT_DISPATCHER_STATUS_TTL_MS,
  DEFAULT_NODE_TTL_MS,
  type DispatcherStatusPublisher,
  type IntentPatch,
  REGISTRY_PREFIX_PATTERN,
  type Registry,
  type RegistryOptions,
  type StaticNodePut,
  type ViewWatch,
  type WatchViewOptions,
} from './registry.ts';
export type { KvEntry, KvEvent, KvListing, KvStore, Lease, Watch, WatchHandlers } from './store.ts';
export { emptyView, type RegistryView } from './view.ts';
