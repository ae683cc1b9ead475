'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { isLeapYear, daysInMonth, dayOfYear, addMonths, parseISODate, daysBetween } = require('../src/dates.js');

test('isLeapYear follows the Gregorian rules', () => {
  assert.strictEqual(isLeapYear(2024), true);
  assert.strictEqual(isLeapYear(2023), false);
  assert.strictEqual(isLeapYear(1900), false);
  assert.strictEqual(isLeapYear(2000), true);
});

test('daysInMonth knows every month', () => {
  const lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  lengths.forEach((n, i) => assert.strictEqual(daysInMonth(2023, i + 1), n));
  assert.strictEqual(daysInMonth(2024, 2), 29);
  assert.throws(() => daysInMonth(2024, 13), RangeError);
  assert.throws(() => daysInMonth(2024, 0), RangeError);
});

test('dayOfYear counts from January 1', () => {
  assert.strictEqual(dayOfYear(2023, 1, 1), 1);
  assert.strictEqual(dayOfYear(2023, 3, 1), 60);
  assert.strictEqual(dayOfYear(2024, 3, 1), 61);
  assert.strictEqual(dayOfYear(2023, 12, 31), 365);
});

test('addMonths rolls over years', () => {
  assert.deepStrictEqual(addMonths({ year: 2023, month: 11, day: 15 }, 3), { year: 2024, month: 2, day: 15 });
  assert.deepStrictEqual(addMonths({ year: 2024, month: 1, day: 10 }, -1), { year: 2023, month: 12, day: 10 });
  assert.deepStrictEqual(addMonths({ year: 2024, month: 5, day: 1 }, 24), { year: 2026, month: 5, day: 1 });
});

test('addMonths clamps the day to the month', () => {
  assert.deepStrictEqual(addMonths({ year: 2023, month: 1, day: 31 }, 1), { year: 2023, month: 2, day: 28 });
  assert.deepStrictEqual(addMonths({ year: 2024, month: 1, day: 31 }, 1), { year: 2024, month: 2, day: 29 });
  assert.deepStrictEqual(addMonths({ year: 2024, month: 3, day: 31 }, 1), { year: 2024, month: 4, day: 30 });
});

test('parseISODate reads valid dates', () => {
  assert.deepStrictEqual(parseISODate('2024-02-29'), { year: 2024, month: 2, day: 29 });
  assert.deepStrictEqual(parseISODate('1999-12-31'), { year: 1999, month: 12, day: 31 });
});

test('parseISODate rejects impossible dates', () => {
  assert.throws(() => parseISODate('2023-02-29'), RangeError);
  assert.throws(() => parseISODate('2023-13-01'), RangeError);
  assert.throws(() => parseISODate('2023-04-00'), RangeError);
  assert.throws(() => parseISODate('20230401'), /not a date/);
});

test('daysBetween counts across leap years', () => {
  assert.strictEqual(daysBetween({ year: 2024, month: 1, day: 1 }, { year: 2024, month: 3, day: 1 }), 60);
  assert.strictEqual(daysBetween({ year: 2023, month: 12, day: 31 }, { year: 2024, month: 1, day: 1 }), 1);
  assert.strictEqual(daysBetween({ year: 2000, month: 1, day: 1 }, { year: 2001, month: 1, day: 1 }), 366);
  assert.strictEqual(daysBetween({ year: 1969, month: 12, day: 31 }, { year: 1970, month: 1, day: 1 }), 1);
  assert.strictEqual(daysBetween({ year: 2024, month: 3, day: 1 }, { year: 2024, month: 1, day: 1 }), -60);
});
