// A line diff for the KV editor: what the user typed against what etcd holds now. Plain LCS on
// the lines between the common head and tail; a middle too large for that (over MAX_CELLS
// table cells) is shown as all removed then all added rather than freezing the page.
import { el } from "./common.js";

const MAX_CELLS = 4000000;
const CONTEXT = 3; // unchanged lines kept around each change; longer runs fold

function lcs(a, b) {
  const n = a.length;
  const m = b.length;
  const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push({ op: "same", text: a[i] });
      i++;
      j++;
    } else if (table[i + 1][j] >= table[i][j + 1]) {
      out.push({ op: "del", text: a[i++] });
    } else {
      out.push({ op: "add", text: b[j++] });
    }
  }
  while (i < n) out.push({ op: "del", text: a[i++] });
  while (j < m) out.push({ op: "add", text: b[j++] });
  return out;
}

// [{op: "same"|"del"|"add", text}] turning `before` into `after`, line by line.
export function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start++;
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
  }
  const midA = a.slice(start, endA);
  const midB = b.slice(start, endB);
  const middle = midA.length * midB.length > MAX_CELLS
    ? [...midA.map((text) => ({ op: "del", text })), ...midB.map((text) => ({ op: "add", text }))]
    : lcs(midA, midB);
  const same = (text) => ({ op: "same", text });
  return [...a.slice(0, start).map(same), ...middle, ...a.slice(endA).map(same)];
}

// The diff as <pre> content: "-" lines only in `before`, "+" lines only in `after`, long
// unchanged runs folded to their CONTEXT lines either side.
export function renderDiff(target, before, after) {
  const lines = lineDiff(before, after);
  const changed = lines.map((line) => line.op !== "same");
  const near = (index) => {
    for (let k = Math.max(0, index - CONTEXT); k <= Math.min(lines.length - 1, index + CONTEXT); k++) {
      if (changed[k]) return true;
    }
    return false;
  };
  target.replaceChildren();
  let folded = 0;
  const flush = () => {
    if (folded) target.appendChild(el("span", { className: "diff-fold" }, `  … ${folded} unchanged line${folded === 1 ? "" : "s"}\n`));
    folded = 0;
  };
  lines.forEach((line, index) => {
    if (line.op === "same" && !near(index)) {
      folded++;
      return;
    }
    flush();
    const mark = line.op === "del" ? "- " : line.op === "add" ? "+ " : "  ";
    target.appendChild(el("span", { className: "diff-" + line.op }, mark + line.text + "\n"));
  });
  flush();
  return lines.some((line) => line.op !== "same");
}
