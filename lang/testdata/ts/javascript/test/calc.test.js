const test = require('node:test');
const assert = require('node:assert');
const { clamp } = require('../src/calc.js');

test('clamp', () => {
  assert.strictEqual(clamp(5, 0, 3), 3);
});
