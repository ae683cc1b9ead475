'use strict';

/** Reports whether year is a leap year in the Gregorian calendar. */
function isLeapYear(year) {
  if (year % 400 === 0) {
    return true;
  }
  if (year % 100 === 0) {
    return false;
  }
  return year % 4 === 0;
}

/** Returns the number of days in month (1-12) of year. */
function daysInMonth(year, month) {
  if (month < 1 || month > 12) {
    throw new RangeError(`no month ${month}`);
  }
  if (month === 2) {
    return isLeapYear(year) ? 29 : 28;
  }
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Returns the 1-based day of the year of a date. */
function dayOfYear(year, month, day) {
  let n = day;
  for (let m = 1; m < month; m++) {
    n += daysInMonth(year, m);
  }
  return n;
}

/**
 * Adds months to a date ({year, month, day}), clamping the day to the
 * length of the resulting month (Jan 31 + 1 month is Feb 28 or 29).
 */
function addMonths(date, months) {
  const index = date.year * 12 + (date.month - 1) + months;
  const year = Math.floor(index / 12);
  const month = index - year * 12 + 1;
  const day = Math.min(date.day, daysInMonth(year, month));
  return { year, month, day };
}

/** Parses "YYYY-MM-DD" into {year, month, day}, checking the day exists. */
function parseISODate(text) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) {
    throw new Error(`not a date: ${text}`);
  }
  const date = { year: Number(m[1]), month: Number(m[2]), day: Number(m[3]) };
  if (date.month < 1 || date.month > 12 || date.day < 1 || date.day > daysInMonth(date.year, date.month)) {
    throw new RangeError(`no such day: ${text}`);
  }
  return date;
}

/** Returns the whole days from a to b (negative when b is earlier). */
function daysBetween(a, b) {
  const ordinal = (d) => {
    let n = dayOfYear(d.year, d.month, d.day);
    for (let y = 1970; y < d.year; y++) {
      n += isLeapYear(y) ? 366 : 365;
    }
    for (let y = d.year; y < 1970; y++) {
      n -= isLeapYear(y) ? 366 : 365;
    }
    return n;
  };
  return ordinal(b) - ordinal(a);
}

module.exports = { isLeapYear, daysInMonth, dayOfYear, addMonths, parseISODate, daysBetween };
