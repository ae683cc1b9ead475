'use strict';
const test = require('node:test');
const { missing } = require('../src/no-such-module.js');

test('never runs', () => {
  missing();
});
