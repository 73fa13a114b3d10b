// Drag to reorder the items of one list (the KV cluster tabs, the panel settings lists): marks
// the item under the pointer while dragging and reports where the dragged item was dropped.
// Only the list's own children take part, so a drag never crosses into another list.

// options:
//   item: selector of the draggable children (".kv-tab", "li")
//   canDrag(node): false refuses the drag (the default tab stays put); every item by default
//   idOf(node): the text the drag carries
//   isAfter(event, target, dragged): true to drop after `target`, false before it
//   markClass(after, isDragged): the class marking `target` while the pointer is over it ("" none)
//   onDrop(dragged, target, after): the reorder itself
export function dragReorder(list, { item, canDrag = () => true, idOf, isAfter, markClass, onDrop }) {
  let dragged = null;
  let marked = null; // [node, class] of the one mark shown

  function clearMark() {
    if (marked) marked[0].classList.remove(marked[1]);
    marked = null;
  }
  function dropTarget(e) {
    if (!dragged) return null;
    const node = e.target.closest(item);
    if (!node || node.parentNode !== list) return null;
    return { node, after: isAfter(e, node, dragged) };
  }

  list.addEventListener("dragstart", (e) => {
    const node = e.target.closest(item);
    if (!node || node.parentNode !== list || !canDrag(node)) {
      e.preventDefault();
      return;
    }
    dragged = node;
    node.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", idOf(node));
  });
  list.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    clearMark();
  });
  list.addEventListener("dragover", (e) => {
    const target = dropTarget(e);
    if (!target) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
    clearMark();
    const name = markClass(target.after, target.node === dragged);
    if (name) {
      target.node.classList.add(name);
      marked = [target.node, name];
    }
  });
  list.addEventListener("drop", (e) => {
    const target = dropTarget(e);
    if (!target) return;
    e.preventDefault();
    const source = dragged;
    clearMark();
    if (target.node !== source) onDrop(source, target.node, target.after);
  });
}
