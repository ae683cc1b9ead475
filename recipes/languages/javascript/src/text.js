'use strict';

/** Turns "Hello, World!" into "hello-world". */
function slugify(text) {
  return text
    .toLowerCase()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

/** Shortens text to at most max characters, ending in "…" when cut. */
function truncate(text, max) {
  if (text.length <= max) {
    return text;
  }
  if (max <= 1) {
    return '…'.slice(0, max);
  }
  return text.slice(0, max - 1).trimEnd() + '…';
}

/** Pads each cell to its column's width and joins rows with newlines. */
function formatTable(rows) {
  const widths = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] || 0, String(cell).length);
    });
  }
  return rows
    .map((row) => row.map((cell, i) => String(cell).padEnd(widths[i])).join(' | ').trimEnd())
    .join('\n');
}

/** Splits a CSV line on commas, honouring double-quoted fields. */
function parseCSVLine(line) {
  const fields = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === ',') {
      fields.push(field);
      field = '';
    } else {
      field += c;
    }
  }
  fields.push(field);
  return fields;
}

module.exports = { slugify, truncate, formatTable, parseCSVLine };
