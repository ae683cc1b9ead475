'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { slugify, truncate, formatTable, parseCSVLine } = require('../src/text.js');

test('slugify lowercases and joins words with dashes', () => {
  assert.strictEqual(slugify('Hello, World!'), 'hello-world');
  assert.strictEqual(slugify('  Many   spaces  '), 'many-spaces');
  assert.strictEqual(slugify('Crème brûlée 2024'), 'creme-brulee-2024');
  assert.strictEqual(slugify('---'), '');
});

test('truncate leaves short text alone', () => {
  assert.strictEqual(truncate('short', 10), 'short');
  assert.strictEqual(truncate('exact', 5), 'exact');
});

test('truncate cuts long text with an ellipsis', () => {
  assert.strictEqual(truncate('a long sentence here', 8), 'a long…');
  assert.strictEqual(truncate('abcdef', 4), 'abc…');
  assert.strictEqual(truncate('abcdef', 1), '…');
  assert.strictEqual(truncate('abcdef', 0), '');
});

test('formatTable aligns columns', () => {
  const table = formatTable([
    ['item', 'qty', 'price'],
    ['apple', 3, '1.20'],
    ['kiwi', 12, '0.35'],
  ]);
  assert.strictEqual(table, 'item  | qty | price\napple | 3   | 1.20\nkiwi  | 12  | 0.35');
});

test('parseCSVLine splits plain fields', () => {
  assert.deepStrictEqual(parseCSVLine('a,b,,c'), ['a', 'b', '', 'c']);
  assert.deepStrictEqual(parseCSVLine(''), ['']);
});

test('parseCSVLine honours quotes', () => {
  assert.deepStrictEqual(parseCSVLine('"x, y",2,"say ""hi"""'), ['x, y', '2', 'say "hi"']);
});
