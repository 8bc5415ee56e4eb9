import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLineSplitter, createOutputTail, TRUNCATED_MARK } from '../../../src/agent/output.ts';

test('output - the tail keeps only the last bytes', () => {
  const tail = createOutputTail(10);
  for (let i = 0; i < 100; i++) tail.push(Buffer.from(`${i % 10}`));
  assert.equal(tail.text(), '0123456789');
  assert.ok(tail.truncated);
  const small = createOutputTail(10);
  small.push(Buffer.from('abc'));
  assert.equal(small.text(), 'abc');
  assert.equal(small.truncated, false);
});

test('output - a cut inside a multi-byte character starts the tail at the next whole one', () => {
  const tail = createOutputTail(4);
  tail.push(Buffer.from('xx€ab', 'utf8')); // € is 3 bytes: the last 4 bytes are 0x82 0xac 'a' 'b'
  assert.equal(tail.text(), 'ab');
});

test('output - lines are split across chunks, CRLF trimmed, last partial line flushed at end', () => {
  const lines: string[] = [];
  const s = createLineSplitter(100, (l) => lines.push(l));
  s.push('one\r\ntw');
  s.push('o\nthr');
  s.push('ee');
  assert.deepEqual(lines, ['one', 'two']);
  s.end();
  assert.deepEqual(lines, ['one', 'two', 'three']);
});

test('output - an endless line is cut once and the rest of it dropped', () => {
  const lines: string[] = [];
  const s = createLineSplitter(5, (l) => lines.push(l));
  s.push('abcdefgh');
  s.push('ijklmnop');
  s.push('qr\nnext\n');
  assert.deepEqual(lines, [`abcde${TRUNCATED_MARK}`, 'next']);
  s.push('0123456789\nok\n');
  assert.deepEqual(lines, [`abcde${TRUNCATED_MARK}`, 'next', `01234${TRUNCATED_MARK}`, 'ok']);
});
