// Progress of the examples' long phases on stderr, in one style: a bar redrawn in place on a
// terminal; in a file or pipe, where carriage returns would make one endless line, a plain line
// every few seconds and one at the end.

/** Where a phase is: `done` of `total` units (steps, epochs, examples) and what it is doing. */
export interface ProgressUpdate {
  readonly done: number;
  readonly total: number;
  /** e.g. `epoch 1/9 step 40/469 loss 0.1234`. */
  readonly label: string;
}

/** Options of {@link progressReporter}. */
export interface ProgressReporterOptions {
  /** Redraw one bar in place (a terminal). Default: whether stderr is a terminal. */
  readonly interactive?: boolean;
  /** Seconds between lines when not interactive. Default 5. */
  readonly everySeconds?: number;
  /** Where lines go. Default stderr. */
  readonly write?: (text: string) => void;
  /** Milliseconds, e.g. `performance.now`. Injected by tests. */
  readonly now?: () => number;
}

/** Seconds that must pass after the first unit before an ETA is shown, ... */
const ETA_MIN_SECONDS = 3;
/** ... and units, unless units are slow enough (epochs) that ETA_SLOW_SECONDS have passed. */
const ETA_MIN_UNITS = 5;
const ETA_SLOW_SECONDS = 10;

/**
 * Estimates the seconds left from the pace since the first unit, not since the start: the first
 * step compiles kernels and fills caches and can take a hundred times a later one, so an ETA
 * from it (5,619 s for a run of minutes) would only mislead. No estimate until, after the first
 * unit, 3 s and 5 units have passed (or 10 s and one unit, for slow units such as epochs).
 */
export function etaEstimator(now: () => number = () => performance.now()) {
  let first: { done: number; at: number } | undefined;
  return (done: number, total: number): number | undefined => {
    const at = now();
    if (first === undefined || done < first.done) {
      first = { done, at };
      return undefined;
    }
    const units = done - first.done;
    const seconds = (at - first.at) / 1000;
    const enough =
      units >= 1 &&
      seconds >= ETA_MIN_SECONDS &&
      (units >= ETA_MIN_UNITS || seconds >= ETA_SLOW_SECONDS);
    return enough ? (seconds / units) * (total - done) : undefined;
  };
}

/** What {@link progressReporter} returns. */
export interface ProgressReporter {
  /** Call after every unit of work; draws or prints when due. */
  readonly update: (progress: ProgressUpdate) => void;
  /** Prints a line of its own (a phase starts), ending a bar drawn in place first. */
  readonly say: (text: string) => void;
  /** Forgets the pace, for a new phase whose units take another time. */
  readonly restart: () => void;
}

/**
 * Progress lines of one program. Lines start with `program:`; the ETA appears once
 * {@link etaEstimator} has one.
 */
export function progressReporter(
  program: string,
  options: ProgressReporterOptions = {},
): ProgressReporter {
  const interactive = options.interactive ?? process.stderr.isTTY === true;
  const everyMs = interactive ? 250 : (options.everySeconds ?? 5) * 1000;
  const write = options.write ?? ((text: string) => process.stderr.write(text));
  const now = options.now ?? (() => performance.now());
  let eta = etaEstimator(now);
  let lastLine = Number.NEGATIVE_INFINITY;
  let barDrawn = false;
  return {
    update: ({ done, total, label }) => {
      const secondsLeft = eta(done, total);
      const at = now();
      const finished = done >= total;
      if (at - lastLine < everyMs && !finished) return;
      lastLine = at;
      const etaText =
        secondsLeft === undefined || finished ? '' : ` ETA ${secondsLeft.toFixed(0)}s`;
      if (interactive) {
        const width = 24;
        const filled = Math.round((Math.min(done, total) / total) * width);
        const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
        write(`\r${`${program}: ${bar} ${label}${etaText}`.padEnd(100)}${finished ? '\n' : ''}`);
        barDrawn = !finished;
      } else {
        write(`${program}: ${label}${etaText}\n`);
      }
    },
    say: (text) => {
      write(`${barDrawn ? '\n' : ''}${program}: ${text}\n`);
      barDrawn = false;
    },
    restart: () => {
      eta = etaEstimator(now);
      lastLine = Number.NEGATIVE_INFINITY;
    },
  };
}
