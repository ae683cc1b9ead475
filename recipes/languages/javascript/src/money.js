'use strict';

/**
 * Parses an amount like "12.34", "-0.5" or "1,234.00" into integer cents.
 * Throws on anything else.
 */
function parseCents(text) {
  const s = String(text).trim().replace(/,/g, '');
  const m = /^(-)?(\d+)(?:\.(\d{1,2}))?$/.exec(s);
  if (!m) {
    throw new Error(`not an amount: ${text}`);
  }
  const whole = Number(m[2]);
  let frac = m[3] || '0';
  if (frac.length === 1) {
    frac += '0';
  }
  const cents = whole * 100 + Number(frac);
  return m[1] ? -cents : cents;
}

/** Formats integer cents as "1,234.56" with a leading "-" when negative. */
function formatCents(cents) {
  const negative = cents < 0;
  const abs = Math.abs(cents);
  const whole = String(Math.floor(abs / 100));
  const frac = String(abs % 100).padStart(2, '0');
  let grouped = '';
  for (let i = 0; i < whole.length; i++) {
    if (i > 0 && (whole.length - i) % 3 === 0) {
      grouped += ',';
    }
    grouped += whole[i];
  }
  return `${negative ? '-' : ''}${grouped}.${frac}`;
}

/**
 * Splits cents into n shares that differ by at most one cent, the larger
 * shares first, so that they add up to the total.
 */
function splitEvenly(cents, n) {
  if (!Number.isInteger(n) || n <= 0) {
    throw new RangeError('n must be a positive integer');
  }
  const base = Math.trunc(cents / n);
  let rest = cents - base * n;
  const shares = [];
  for (let i = 0; i < n; i++) {
    let share = base;
    if (rest > 0) {
      share += 1;
      rest -= 1;
    } else if (rest < 0) {
      share -= 1;
      rest += 1;
    }
    shares.push(share);
  }
  return shares;
}

/** Applies a percentage rate to cents, rounding half away from zero. */
function applyRate(cents, percent) {
  const raw = (cents * percent) / 100;
  const rounded = Math.round(Math.abs(raw));
  return raw < 0 ? -rounded : rounded;
}

/**
 * Returns the balance after each entry of a ledger (objects with a cents
 * field), starting from opening.
 */
function runningBalance(entries, opening = 0) {
  const out = [];
  let balance = opening;
  for (const e of entries) {
    balance += e.cents;
    out.push(balance);
  }
  return out;
}

/** Sums cents per category of the entries ({category, cents}). */
function totalsByCategory(entries) {
  const totals = {};
  for (const e of entries) {
    const key = e.category || 'uncategorised';
    totals[key] = (totals[key] || 0) + e.cents;
  }
  return totals;
}

module.exports = { parseCents, formatCents, splitEvenly, applyRate, runningBalance, totalsByCategory };
