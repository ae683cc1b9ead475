import test from 'node:test';
import assert from 'node:assert';
import { sum } from './sum.mjs';

test('sums in a module', () => {
  assert.strictEqual(sum([1, 2, 3]), 6);
});
