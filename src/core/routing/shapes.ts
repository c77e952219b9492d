import { GradientRoutingError } from '../errors.js';
/** Shape helpers shared by the routing op and the mask builders. */

/** Formats a shape the way error messages in this library print it: `[2,3]`. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/**
 * True when `mask` broadcasts to `target` without changing `target`'s shape: aligned from the
 * right, each mask dimension equals the target's or is 1, and the mask has no more dimensions.
 */
export function broadcastsTo(mask: readonly number[], target: readonly number[]): boolean {
  if (mask.length > target.length) return false;
  const offset = target.length - mask.length;
  return mask.every((size, axis) => size === 1 || size === target[axis + offset]);
}

/** Throws an error naming both shapes when `mask` does not broadcast to `target`. */
export function assertBroadcastsTo(
  mask: readonly number[],
  target: readonly number[],
  what = 'mask',
): void {
  if (!broadcastsTo(mask, target)) {
    throw new GradientRoutingError(
      `gradient-routing: ${what} of shape ${formatShape(mask)} does not broadcast to the routed ` +
        `tensor of shape ${formatShape(target)}. Give it the tensor's shape, or size 1 on the axes ` +
        `it should share (for example [${target.length > 1 ? 'B,1' : '1'}] for one weight per example).`,
    );
  }
}

/** Shape of a (possibly nested) number array, checking that it is rectangular. */
export function nestedArrayShape(values: unknown): number[] {
  const shape: number[] = [];
  let level: unknown = values;
  while (Array.isArray(level)) {
    shape.push(level.length);
    level = level[0];
  }
  const check = (node: unknown, depth: number): void => {
    if (depth === shape.length) {
      if (typeof node !== 'number') {
        throw new GradientRoutingError(
          `gradient-routing: mask arrays must hold numbers, found ${typeof node}.`,
        );
      }
      return;
    }
    if (!Array.isArray(node) || node.length !== shape[depth]) {
      throw new GradientRoutingError(
        `gradient-routing: mask array is ragged at depth ${depth}; every row needs ${shape[depth]} entries.`,
      );
    }
    for (const child of node) check(child, depth + 1);
  };
  check(values, 0);
  return shape;
}
