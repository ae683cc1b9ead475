'use strict';

function add(a, b) {
  return a + b;
}

// sub is wrong on purpose: the fixture needs a failing test.
function sub(a, b) {
  return a + b;
}

module.exports = { add, sub };
