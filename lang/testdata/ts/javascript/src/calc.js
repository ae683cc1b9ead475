'use strict';

const DEFAULT_STEP = makeStep(2);

function makeStep(n) {
  return n * 2;
}

function clamp(x, lo, hi) {
  if (x < lo) {
    return lo;
  } else if (x > hi) {
    return hi;
  }
  return x;
}

function sum(xs, from, to) {
  let s = 0;
  for (let i = from; i < to && i < xs.length; i++) {
    s += xs[i];
  }
  return s;
}

function label(name, v) {
  return name.toUpperCase() + ': ' + v;
}

const between = (x, lo, hi) => {
  if (x >= lo && x <= hi) {
    return true;
  } else {
    return false;
  }
};

class Counter {
  constructor(start) {
    this.count = start;
  }

  get value() {
    return this.count;
  }

  step(n) {
    this.count += n * DEFAULT_STEP;
    if (this.count === 0) {
      return false;
    }
    return this.count % 2 === 0;
  }

  reset() {
    this.count = 0;
  }
}

module.exports.first = function (xs) {
  if (xs.length === 0) {
    throw new Error('empty');
  }
  return xs.slice(0, 1)[0];
};

module.exports = { clamp, sum, label, between, Counter, makeStep };
