/**
 * What kind of problem a {@link GradientRoutingError} reports, so that callers can branch on it
 * without parsing messages.
 */
export type GradientRoutingErrorCode =
  /** An argument has the wrong type, shape, size or value. */
  | 'invalid-argument'
  /** A label is not an integer, out of range, or in no route. */
  | 'invalid-label'
  /** A mask holds NaN or a value outside its declared range, or is disposed. */
  | 'invalid-mask'
  /** A file or corpus is malformed, missing, or of another kind. */
  | 'invalid-data'
  /** A backend is missing or cannot start. */
  | 'backend'
  /** The GPU rejected work (a WebGPU validation error), ran out of memory, or was lost. */
  | 'gpu'
  /** Training diverged (NaN or exploding loss). */
  | 'diverged'
  /** An object was used after `dispose()`. */
  | 'disposed';

/**
 * Every error the library throws on bad input. The message names the problem and the fix;
 * `code` says what kind of problem it is and `value`, when there is one, holds the offending value.
 *
 * @example
 * ```ts
 * try {
 *   labelRule(32, routes).masks({ labels });
 * } catch (error) {
 *   if (error instanceof GradientRoutingError && error.code === 'invalid-label') console.log(error.value);
 * }
 * ```
 */
export class GradientRoutingError extends Error {
  /** What kind of problem this is. */
  readonly code: GradientRoutingErrorCode;
  /** The offending value, when a single value is at fault. */
  readonly value: unknown;

  /**
   * @param message - What is wrong and how to fix it; `gradient-routing: ` is prefixed when missing.
   * @param options - The underlying error, as `{ cause }`.
   */
  constructor(
    message: string,
    code: GradientRoutingErrorCode = 'invalid-argument',
    value?: unknown,
    options?: ErrorOptions,
  ) {
    super(
      message.startsWith('gradient-routing: ') ? message : `gradient-routing: ${message}`,
      options,
    );
    this.name = 'GradientRoutingError';
    this.code = code;
    this.value = value;
  }
}

/**
 * Checks that `value` is an integer of at least `min` (1 unless given) and returns it.
 * @throws {@link GradientRoutingError} naming `name`, the value and the fix.
 */
export function assertInteger(value: number, name: string, min = 1): number {
  if (!Number.isInteger(value) || value < min) {
    throw new GradientRoutingError(
      `${name} must be an integer >= ${min}, got ${String(value)}; pass a whole number >= ${min}.`,
      'invalid-argument',
      value,
    );
  }
  return value;
}

/**
 * Checks that `value` is a finite number in `[min, max]` and returns it.
 * @throws {@link GradientRoutingError} naming `name`, the value and the range.
 */
export function assertInRange(value: number, name: string, min: number, max: number): number {
  if (!(value >= min && value <= max)) {
    throw new GradientRoutingError(
      `${name} must be a number in [${min}, ${max}], got ${String(value)}.`,
      'invalid-argument',
      value,
    );
  }
  return value;
}

/**
 * Checks that `value` is one of `allowed` and returns it, typed.
 * @throws {@link GradientRoutingError} listing the allowed values.
 */
export function assertOneOf<T extends string>(
  value: string,
  name: string,
  allowed: readonly T[],
): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new GradientRoutingError(
      `${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got '${value}'.`,
      'invalid-argument',
      value,
    );
  }
  return value as T;
}
