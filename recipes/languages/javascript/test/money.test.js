'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { parseCents, formatCents, splitEvenly, applyRate, runningBalance, totalsByCategory } = require('../src/money.js');

test('parseCents reads whole and fractional amounts', () => {
  assert.strictEqual(parseCents('12.34'), 1234);
  assert.strictEqual(parseCents('7'), 700);
  assert.strictEqual(parseCents('0.5'), 50);
  assert.strictEqual(parseCents(' 1,234.05 '), 123405);
});

test('parseCents reads negative amounts', () => {
  assert.strictEqual(parseCents('-3.20'), -320);
  assert.strictEqual(parseCents('-0.01'), -1);
});

test('parseCents rejects malformed input', () => {
  for (const bad of ['', 'abc', '1.234', '1..2', '--1']) {
    assert.throws(() => parseCents(bad), /not an amount/);
  }
});

test('formatCents groups thousands', () => {
  assert.strictEqual(formatCents(0), '0.00');
  assert.strictEqual(formatCents(5), '0.05');
  assert.strictEqual(formatCents(123456789), '1,234,567.89');
  assert.strictEqual(formatCents(100000), '1,000.00');
});

test('formatCents shows the sign', () => {
  assert.strictEqual(formatCents(-1999), '-19.99');
});

test('formatCents and parseCents round-trip', () => {
  for (const cents of [0, 1, 99, 100, 123456, -987654]) {
    assert.strictEqual(parseCents(formatCents(cents)), cents);
  }
});

test('splitEvenly spreads the remainder', () => {
  assert.deepStrictEqual(splitEvenly(1000, 3), [334, 333, 333]);
  assert.deepStrictEqual(splitEvenly(900, 3), [300, 300, 300]);
  assert.deepStrictEqual(splitEvenly(-1000, 3), [-334, -333, -333]);
  assert.deepStrictEqual(splitEvenly(2, 4), [1, 1, 0, 0]);
});

test('splitEvenly rejects a bad share count', () => {
  assert.throws(() => splitEvenly(100, 0), RangeError);
  assert.throws(() => splitEvenly(100, 1.5), RangeError);
});

test('applyRate rounds half away from zero', () => {
  assert.strictEqual(applyRate(1000, 7.5), 75);
  assert.strictEqual(applyRate(150, 5), 8);
  assert.strictEqual(applyRate(-150, 5), -8);
  assert.strictEqual(applyRate(999, 0), 0);
});

test('runningBalance accumulates from the opening balance', () => {
  const entries = [{ cents: 500 }, { cents: -200 }, { cents: 1000 }];
  assert.deepStrictEqual(runningBalance(entries), [500, 300, 1300]);
  assert.deepStrictEqual(runningBalance(entries, 100), [600, 400, 1400]);
  assert.deepStrictEqual(runningBalance([]), []);
});

test('totalsByCategory groups entries', () => {
  const totals = totalsByCategory([
    { category: 'food', cents: 1200 },
    { category: 'rent', cents: 50000 },
    { category: 'food', cents: 800 },
    { cents: 99 },
  ]);
  assert.deepStrictEqual(totals, { food: 2000, rent: 50000, uncategorised: 99 });
});
