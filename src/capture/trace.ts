import type { CallSummary, CaptureStore, ControlEvent, StoredMessage } from './model.ts';

/** Everything shown for one call: its summary, its legs, their messages and the events meanwhile. */
export interface CallTrace {
  summary: CallSummary;
  /** The Call-ID asked for first, then the legs linked to it by correlation. */
  legs: string[];
  messages: StoredMessage[];
  events: ControlEvent[];
}

/** Control events this long before and after a call are shown with it (a drain just before). */
export const TRACE_EVENT_MARGIN_US = 5_000_000;

/**
 * Loads a call as `switchyard trace` and the console show it; undefined when the store has no
 * such Call-ID. With `only`, correlated legs are left out.
 */
export async function loadCallTrace(
  store: Pick<CaptureStore, 'getCall' | 'relatedCallIds' | 'messagesOf' | 'eventsBetween'>,
  callId: string,
  opts: { only?: boolean } = {},
): Promise<CallTrace | undefined> {
  const summary = await store.getCall(callId);
  if (!summary) return undefined;
  const legs = opts.only ? [callId] : [callId, ...(await store.relatedCallIds(callId))];
  const messages = await store.messagesOf(legs);
  const first = messages[0]?.tsUs ?? summary.firstTsUs;
  const last = messages.at(-1)?.tsUs ?? summary.lastTsUs;
  const events = await store.eventsBetween(first - TRACE_EVENT_MARGIN_US, last + TRACE_EVENT_MARGIN_US);
  return { summary, legs, messages, events };
}
