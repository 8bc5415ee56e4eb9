import { describeError } from '../core/errors.ts';
import { createSilentLogger, type Logger } from '../core/logger.ts';
import { type AmiMessage, getField } from '../proto/ami.ts';
import type { AmiClient } from './ami-client.ts';

/**
 * Live call count of one Asterisk from AMI: on every login the current channels are read with
 * `CoreShowChannels` (one `CoreShowChannel` event each, keyed by Uniqueid), then `Newchannel`
 * adds a channel and `Hangup` removes it. Each session starts from a fresh snapshot, so the count
 * is right again after any reconnect, whatever was missed while AMI was away.
 *
 * Two numbers, because both are wanted:
 * - `channels`: every leg is one. A drain waits for this to reach 0: it is what a stop would cut.
 * - `calls`: distinct Linkedid among those channels. Asterisk gives every channel of one call
 *   (caller leg, dialled legs, Local channel halves) the Linkedid of the channel that started
 *   it, so this is what an operator means by "calls". An inbound call answered by the dialplan
 *   is one channel and one call; the same call bridged to an outbound leg is two channels, one call.
 */

export interface CallCount {
  channels: number;
  calls: number;
  /**
   * True while the numbers come from this AMI session's snapshot plus its events. False before
   * the first snapshot, while disconnected and when the snapshot was refused (Asterisk shutting
   * down): the numbers are then the last known ones.
   */
  synced: boolean;
}

export interface CallCounter {
  calls(): CallCount;
  /** Called whenever channels, calls or synced change. Returns an unsubscribe function. */
  onChange(listener: (count: CallCount) => void): () => void;
  /** Stops listening to the client (which stays open: it belongs to the caller). */
  close(): void;
}

export interface CallCounterOptions {
  logger?: Logger;
  /**
   * First wait before asking for the snapshot again after it failed in a live session (refused
   * while Asterisk is shutting down, timed out); doubles up to 30 s. Default 1000 ms.
   */
  resyncRetryMs?: number;
}

const MAX_RESYNC_RETRY_MS = 30_000;

export function createCallCounter(client: AmiClient, opts: CallCounterOptions = {}): CallCounter {
  const logger = (opts.logger ?? createSilentLogger()).child({ component: 'ami-calls' });
  const resyncRetryMs = opts.resyncRetryMs ?? 1000;
  const listeners = new Set<(count: CallCount) => void>();
  /** Uniqueid -> Linkedid of every live channel. */
  let channels = new Map<string, string>();
  let synced = false;
  /** Events seen while a snapshot is on its way, replayed on top of it. */
  let syncing: { session: number; buffered: AmiMessage[] } | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let failedSyncs = 0;
  let closed = false;
  /** count() of the current state; dropped on every change (counting calls walks every channel). */
  let cached: CallCount | undefined;
  let last: CallCount = count();

  function count(): CallCount {
    cached ??= { channels: channels.size, calls: new Set(channels.values()).size, synced };
    return cached;
  }

  function notify(): void {
    cached = undefined;
    const now = count();
    if (now.channels === last.channels && now.calls === last.calls && now.synced === last.synced) return;
    last = now;
    for (const listener of [...listeners]) {
      try {
        listener(now);
      } catch (err) {
        logger.error({ err: describeError(err) }, 'call count listener threw');
      }
    }
  }

  /** Applies one channel event; true when it changed the map. */
  function apply(event: AmiMessage, into: Map<string, string>): boolean {
    const uniqueid = getField(event, 'Uniqueid');
    if (!uniqueid) return false;
    const name = getField(event, 'Event');
    const linkedid = getField(event, 'Linkedid') || uniqueid;
    const before = into.get(uniqueid);
    if (name === 'Newchannel') into.set(uniqueid, linkedid);
    else if (name === 'Hangup') into.delete(uniqueid);
    // Transfers and masquerades can move a channel to another call's Linkedid; every channel
    // event carries the current one. Only known channels are updated: events never create one.
    else if (before !== undefined && before !== linkedid) into.set(uniqueid, linkedid);
    return into.get(uniqueid) !== before;
  }

  /**
   * Called synchronously from the 'connected' state change, before any event of the session is
   * handed out, so every event after the snapshot request is buffered. Replaying them on the
   * snapshot is right whichever side of it they happened on: adding a listed channel and
   * removing an unlisted one are both no-ops.
   */
  async function sync(): Promise<void> {
    clearTimeout(retryTimer);
    retryTimer = undefined;
    const session = client.session;
    const attempt = { session, buffered: [] as AmiMessage[] };
    syncing = attempt;
    try {
      const list = await client.actionList('CoreShowChannels');
      if (syncing !== attempt || closed) return;
      const snapshot = new Map<string, string>();
      for (const item of list.events) {
        if (getField(item, 'Event') !== 'CoreShowChannel') continue;
        const uniqueid = getField(item, 'Uniqueid');
        if (uniqueid) snapshot.set(uniqueid, getField(item, 'Linkedid') || uniqueid);
      }
      for (const event of attempt.buffered) apply(event, snapshot);
      channels = snapshot;
      synced = true;
      syncing = undefined;
      failedSyncs = 0;
      logger.debug({ channels: channels.size, replayed: attempt.buffered.length }, 'call count synced');
      notify();
    } catch (err) {
      if (syncing !== attempt || closed) return;
      // Keep counting on the old map with this session's events; the snapshot is retried.
      for (const event of attempt.buffered) apply(event, channels);
      syncing = undefined;
      notify();
      if (client.state === 'connected' && client.session === session) {
        const retryInMs = Math.min(MAX_RESYNC_RETRY_MS, resyncRetryMs * 2 ** Math.min(failedSyncs, 20));
        failedSyncs++;
        logger.warn({ err: describeError(err), retryInMs }, 'CoreShowChannels failed');
        retryTimer = setTimeout(() => {
          if (!closed && client.state === 'connected' && client.session === session) void sync();
        }, retryInMs);
      }
    }
  }

  const offState = client.onState((state) => {
    if (state === 'connected') {
      void sync();
      return;
    }
    syncing = undefined;
    clearTimeout(retryTimer);
    retryTimer = undefined;
    failedSyncs = 0;
    synced = false;
    notify();
  });

  const offEvent = client.onEvent((event) => {
    const name = getField(event, 'Event');
    if (name === undefined || getField(event, 'Uniqueid') === undefined) return;
    if (syncing) syncing.buffered.push(event);
    // Most channel events (VarSet, Newexten, Newstate...) change nothing counted.
    else if (apply(event, channels)) notify();
  });

  if (client.state === 'connected') void sync();

  return {
    calls: count,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      closed = true;
      offState();
      offEvent();
      clearTimeout(retryTimer);
      syncing = undefined;
      listeners.clear();
    },
  };
}
