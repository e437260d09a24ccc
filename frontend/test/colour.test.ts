import assert from "node:assert/strict";
import { test } from "node:test";

import { withAlpha } from "../src/colour.ts";

test("theme colours get an alpha for the charts", () => {
  assert.equal(withAlpha("#4db6ac", 0.3), "rgba(77, 182, 172, 0.3)");
  assert.equal(withAlpha(" #fff ", 0.5), "rgba(255, 255, 255, 0.5)");
  assert.equal(withAlpha("#4db6ac80", 0.3), "rgba(77, 182, 172, 0.3)");
  assert.equal(withAlpha("rgb(1, 2, 3)", 0.2), "rgba(1, 2, 3, 0.2)");
  assert.equal(withAlpha("rgba(1 2 3 / 50%)", 0.2), "rgba(1, 2, 3, 0.2)");
  assert.equal(withAlpha("var(--x)", 0.2), null);
  assert.equal(withAlpha("teal", 0.2), null);
});
