/** One destination as Kamailio's `dispatcher.list` RPC reports it (dispatcher.c ds_rpc_print_set). */
export interface KamailioDestination {
  setId: number;
  uri: string;
  /** Two letters: A/I/T/D (active, inactive, trying, disabled) then P/X (probing or not). */
  flags: string;
  priority: number;
  attrs: {
    body: string;
    duid?: string;
    weight?: number;
    rweight?: number;
    maxload?: number;
  };
}

/** Runtime states accepted by dispatcher.set_state / set_duid_state. */
export type DispatcherRuntimeState = 'a' | 'i' | 't' | 'd' | 'ap' | 'ip' | 'tp';

/** Kamailio's JSON-RPC as the dispatcher uses it (jsonrpcs over HTTP via xhttp). */
export interface KamailioRpc {
  /** All destinations of all sets; [] when Kamailio says "No Destination Sets". */
  listDispatchers(): Promise<KamailioDestination[]>;
  /**
   * `dispatcher.reload`. Rejects with a retryable SwitchyardError SY_ERR_KAMAILIO_RELOAD_BUSY on
   * "Ongoing reload" (reload_delta not yet elapsed), SY_ERR_KAMAILIO_UNREACHABLE when Kamailio
   * does not answer, SY_ERR_KAMAILIO_RPC for other JSON-RPC faults.
   */
  reload(): Promise<void>;
  /** `dispatcher.set_duid_state`; not rate-limited by Kamailio. */
  setDuidState(state: DispatcherRuntimeState, setId: number, duid: string): Promise<void>;
  /** Any other method; returns JSON-RPC `result`. */
  call(method: string, params?: unknown[]): Promise<unknown>;
  close(): Promise<void>;
}
