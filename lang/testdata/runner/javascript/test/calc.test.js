'use strict';
const test = require('node:test');
const { describe, it } = require('node:test');
const assert = require('node:assert');
const { add, sub } = require('../src/calc.js');

test('adds two numbers', () => {
  assert.strictEqual(add(2, 3), 5);
});

test('subtracts', () => {
  assert.strictEqual(sub(5, 3), 2);
});

test('throws an error', () => {
  throw new Error('boom');
});

test('skipped for now', { skip: 'not today' }, () => {});

test('todo later', { todo: true }, () => {
  assert.strictEqual(sub(1, 1), 0);
});

test('grüße ünïcode 🎉', () => {
  assert.strictEqual(add(-1, 1), 0);
});

test('handles # hash and \\ backslash', () => {
  assert.strictEqual(add(0, 0), 0);
});

test('table', async (t) => {
  await t.test('two plus two', () => {
    assert.strictEqual(add(2, 2), 4);
  });
  await t.test('minus', () => {
    assert.strictEqual(sub(5, 1), 4);
  });
  await t.test('nested', async (t) => {
    await t.test('deep ok', () => {});
    await t.test('deep skip', (t) => t.skip('later'));
  });
});

describe('suite of things', () => {
  it('works inside describe', () => {
    assert.strictEqual(add(1, 1), 2);
  });
  it('fails inside describe', () => {
    assert.deepStrictEqual([sub(2, 1)], [1]);
  });
  it.skip('skipped it', () => {});
});
