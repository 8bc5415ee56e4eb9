const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?/y;
const MAX_DEPTH = 512;

/**
 * Offset of the first JSON syntax error in `text` (text.length when it ends too early), for
 * `file:line:col` messages: V8's JSON.parse messages carry a position only for some errors and
 * quote the surrounding text (which may hold a secret) for others. Only called after JSON.parse
 * has already failed, so it favours being short over being fast.
 */
export function findJsonErrorOffset(text: string): number {
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r'))
      i++;
  };
  const readString = (): boolean => {
    i++; // opening quote
    while (i < text.length) {
      const ch = text.charCodeAt(i);
      if (ch === 0x22) {
        i++;
        return true;
      }
      if (ch < 0x20) return false;
      i += ch === 0x5c ? 2 : 1;
    }
    return false;
  };
  const readValue = (depth: number): boolean => {
    skipSpace();
    const c = text[i];
    if (depth > MAX_DEPTH) return false;
    if (c === '"') return readString();
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      skipSpace();
      if (text[i] === close) {
        i++;
        return true;
      }
      for (;;) {
        if (c === '{') {
          skipSpace();
          if (text[i] !== '"' || !readString()) return false;
          skipSpace();
          if (text[i] !== ':') return false;
          i++;
        }
        if (!readValue(depth + 1)) return false;
        skipSpace();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] !== close) return false;
        i++;
        return true;
      }
    }
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return true;
      }
    }
    NUMBER.lastIndex = i;
    if (NUMBER.exec(text) !== null && NUMBER.lastIndex > i) {
      i = NUMBER.lastIndex;
      return true;
    }
    return false;
  };
  if (!readValue(0)) return Math.min(i, text.length);
  skipSpace();
  return i;
}
