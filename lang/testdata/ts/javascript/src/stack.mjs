export class Stack {
  constructor() {
    this.items = [];
  }

  push(v) {
    this.items.push(v);
    return this.items.length;
  }

  pop() {
    if (this.items.length === 0) {
      return undefined;
    }
    return this.items.pop();
  }

  peek() {
    return this.items[this.items.length - 1];
  }
}

export function range(a, b) {
  const out = [];
  for (let i = a; i <= b; i++) {
    out.push(i);
  }
  return out;
}
