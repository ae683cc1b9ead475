'use strict';

module.exports = {
  ...require('./money.js'),
  ...require('./dates.js'),
  ...require('./text.js'),
};
