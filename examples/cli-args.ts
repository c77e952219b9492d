// The command-line style shared by the examples: every value is parsed and checked before any
// work, an error is one line that names the flag and what it accepts (exit code 2), and --help
// lists exactly what is accepted. Written by hand rather than on node:util's parseArgs, which
// reads `--steps -3` as two options ("argument is ambiguous") instead of a value to reject.
import { stat } from 'node:fs/promises';
import {
  type BackendChoice,
  type BackendName,
  GradientRoutingError,
  MAX_WASM_THREADS,
} from 'gradient-routing';
import { NODE_BACKEND_CHOICES, selectNodeBackend, wasmThreadsCount } from 'gradient-routing/node';

/** A wrong command line: the run never started. Exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** How the text after a flag becomes a value. */
export interface ValueType<T> {
  /** Shown after the flag in --help, e.g. `N` or `auto|wasm|cpu`. */
  readonly placeholder: string;
  /** What the flag accepts, completing "--steps needs …", e.g. `an integer from 1 to 8`. */
  readonly accepts: string;
  /** Whether the placeholder lists every accepted value, so --help need not repeat them. */
  readonly listedInPlaceholder?: boolean;
  /** What was wrong with rejected text, e.g. `got '2' in '0.5,2'`. Default `got 'TEXT'`. */
  readonly rejected?: (text: string) => string;
  /** The value, or `undefined` when the text is not accepted. */
  readonly parse: (text: string) => T | undefined;
}

/** An option that takes a value, e.g. `--steps 20` or `--steps=20`. */
export interface ValueOption<T> {
  readonly type: ValueType<T>;
  /** One or more lines of --help; the first should say the default. */
  readonly help: string;
}

/** An option without a value, e.g. `--no-route`; `true` when given. */
export interface SwitchOption {
  readonly help: string;
}

/** The options of one program, by flag name without the leading `--`. */
export type OptionSpecs = Readonly<Record<string, ValueOption<unknown> | SwitchOption>>;

/** What {@link parseArguments} returns: each value option's value when given, each switch's presence. */
export type ParsedOptions<S extends OptionSpecs> = {
  readonly [K in keyof S]: S[K] extends ValueOption<infer T> ? T | undefined : boolean;
};

/**
 * A word that is not an option, e.g. a mode: always required, named by its key (`MODE`) in
 * --help and messages.
 */
export interface SinglePositional<T> {
  readonly type: ValueType<T>;
  readonly help: string;
}

/** Every remaining word (none or more), e.g. `DIR...`; only the last positional may be one. */
export interface RepeatedPositional<T> {
  readonly each: ValueType<T>;
  readonly help: string;
}

/** The words that are not options, in the order they are read, by name (e.g. `MODE`). */
export type PositionalSpecs = Readonly<
  Record<string, SinglePositional<unknown> | RepeatedPositional<unknown>>
>;

/** What {@link parseArguments} returns for the positionals: a value, or the repeated values. */
export type ParsedPositionals<P extends PositionalSpecs> = {
  readonly [K in keyof P]: P[K] extends RepeatedPositional<infer T>
    ? T[]
    : P[K] extends SinglePositional<infer T>
      ? T
      : never;
};

/** A command line without positionals: every word is an option or its value. */
export type NoPositionals = Readonly<Record<never, never>>;

/** A program's command line: its name, how it is started, its options and positionals. */
export interface CommandLine<S extends OptionSpecs, P extends PositionalSpecs = NoPositionals> {
  /** Prefix of every message, e.g. `era`. */
  readonly program: string;
  /** The usage line, e.g. `npm run era -- [options]`. */
  readonly usage: string;
  readonly options: S;
  /** Words among the options that are not options (none unless given). */
  readonly positionals?: P;
}

const HINT = 'run with --help for every option';

function isValueOption(spec: ValueOption<unknown> | SwitchOption): spec is ValueOption<unknown> {
  return 'type' in spec;
}

function isRepeated(
  spec: SinglePositional<unknown> | RepeatedPositional<unknown>,
): spec is RepeatedPositional<unknown> {
  return 'each' in spec;
}

/** An integer in `[min, max]` (no upper bound when `max` is absent). */
export function integer(min: number, max?: number): ValueType<number> {
  return {
    placeholder: 'N',
    accepts: max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`,
    parse: (text) => {
      const value = Number(text);
      const fits = Number.isInteger(value) && value >= min && (max === undefined || value <= max);
      return text.trim() !== '' && fits ? value : undefined;
    },
  };
}

/** A finite number above zero. */
export const positiveNumber: ValueType<number> = {
  placeholder: 'X',
  accepts: 'a positive number',
  parse: (text) => {
    const value = Number(text);
    return text.trim() !== '' && Number.isFinite(value) && value > 0 ? value : undefined;
  },
};

/** One of a fixed set of words; the placeholder lists them unless one is given (`M`). */
export function oneOf<T extends string>(choices: readonly T[], placeholder?: string): ValueType<T> {
  return {
    placeholder: placeholder ?? choices.join('|'),
    listedInPlaceholder: placeholder === undefined,
    accepts: `one of ${choices.join(', ')}`,
    parse: (text) => choices.find((choice) => choice === text),
  };
}

/** Any non-empty text, e.g. a path; `what` says what it is (`a directory`). */
export function text(placeholder: string, what: string): ValueType<string> {
  return {
    placeholder,
    accepts: what,
    // Any text is accepted: there is nothing to list.
    listedInPlaceholder: true,
    parse: (value) => (value === '' ? undefined : value),
  };
}

/**
 * A comma-separated list of at least one item, each accepted by `item`; `items` names them in
 * the plural (`numbers in [0, 1]`) and `example` shows one (`0.25,0.5,1`).
 */
export function listOf<T>(item: ValueType<T>, items: string, example: string): ValueType<T[]> {
  return {
    placeholder: `${item.placeholder}[,${item.placeholder}...]`,
    listedInPlaceholder: item.listedInPlaceholder === true,
    accepts: `${items} separated by commas (e.g. ${example})`,
    rejected: (value) => {
      const bad = value.split(',').find((part) => item.parse(part.trim()) === undefined);
      if (bad === undefined || bad === value) return `got '${value}'`;
      return bad.trim() === '' ? `got an empty entry in '${value}'` : `got '${bad}' in '${value}'`;
    },
    parse: (value) => {
      const parsed = value.split(',').map((part) => item.parse(part.trim()));
      return parsed.every((entry) => entry !== undefined) ? (parsed as T[]) : undefined;
    },
  };
}

/** A number in `[low, high]`. */
export function numberIn(low: number, high: number): ValueType<number> {
  return {
    placeholder: 'F',
    accepts: `a number in [${low}, ${high}]`,
    parse: (value) => {
      const parsed = Number(value);
      return value.trim() !== '' && parsed >= low && parsed <= high ? parsed : undefined;
    },
  };
}

/** Widest flag column of --help; a longer flag puts its description on the next line. */
const HELP_COLUMN = 30;

/**
 * The --help text: the usage line, then one entry per option with what it accepts (unless the
 * placeholder already lists it, as `auto|wasm|cpu` does), then --help itself.
 */
export function formatHelp<S extends OptionSpecs, P extends PositionalSpecs>(
  command: CommandLine<S, P>,
): string {
  // A positional's name is its placeholder, so what it accepts is always spelt out.
  const words = Object.entries(command.positionals ?? {}).map(([name, spec]) => {
    const type = isRepeated(spec) ? spec.each : spec.type;
    return {
      flag: isRepeated(spec) ? `${name}...` : name,
      help: `${spec.help}\naccepts ${type.accepts}`,
    };
  });
  const entries = Object.entries(command.options).map(([name, spec]) => {
    if (!isValueOption(spec)) return { flag: `--${name}`, help: spec.help };
    const { placeholder, accepts, listedInPlaceholder } = spec.type;
    return {
      flag: `--${name} ${placeholder}`,
      help: listedInPlaceholder === true ? spec.help : `${spec.help}\naccepts ${accepts}`,
    };
  });
  entries.unshift(...words);
  entries.push({ flag: '--help', help: 'this text' });
  const width = Math.min(HELP_COLUMN, Math.max(...entries.map((entry) => entry.flag.length + 2)));
  const indent = ' '.repeat(width + 2);
  const lines = entries.map(({ flag, help }) => {
    const [first, ...rest] = help.split('\n');
    const head =
      flag.length + 2 > width
        ? [`  ${flag}`, `${indent}${first}`]
        : [`  ${flag.padEnd(width)}${first}`];
    return [...head, ...rest.map((line) => `${indent}${line}`)].join('\n');
  });
  return `Usage: ${command.usage}\n\n${lines.join('\n')}`;
}

/** The options and, when the command has them, its positionals by name. */
export type ParsedCommand<S extends OptionSpecs, P extends PositionalSpecs> = ParsedOptions<S> &
  ParsedPositionals<P>;

/**
 * Reads the words that are not options into `values`, in the order of `specs`: each single
 * positional takes one word (required), a repeated one every word left.
 */
function readPositionals(
  specs: PositionalSpecs,
  words: readonly string[],
  values: Record<string, unknown>,
): void {
  let next = 0;
  for (const [name, spec] of Object.entries(specs)) {
    if (isRepeated(spec)) {
      values[name] = words.slice(next).map((word) => parseWord(name, spec.each, word));
      next = words.length;
      continue;
    }
    const word = words[next];
    if (word === undefined) throw new UsageError(`missing ${name}: ${spec.type.accepts}`);
    values[name] = parseWord(name, spec.type, word);
    next += 1;
  }
  const extra = words[next];
  if (extra !== undefined) {
    throw new UsageError(`unexpected argument '${extra}'; options start with --`);
  }
}

/** The value of `word` given for `name` (a flag or a positional), or a usage error naming it. */
function parseWord<T>(name: string, type: ValueType<T>, word: string): T {
  const parsed = type.parse(word);
  if (parsed === undefined) {
    const got = type.rejected?.(word) ?? `got '${word}'`;
    throw new UsageError(`${name} needs ${type.accepts}, ${got}`);
  }
  return parsed;
}

/**
 * Parses `args` against the program's options and positionals. Values may follow their flag
 * (`--steps 20`, also `--lr -1`, which is then rejected as a value) or be joined to it
 * (`--steps=20`); any other word not starting with `--` is a positional, wherever it stands.
 *
 * @returns `'help'` when --help (or -h) was given, else the options and positionals.
 * @throws {@link UsageError} naming the flag (or positional) and what it accepts.
 */
export function parseArguments<S extends OptionSpecs, P extends PositionalSpecs = NoPositionals>(
  command: CommandLine<S, P>,
  args: readonly string[],
): ParsedCommand<S, P> | 'help' {
  if (args.includes('--help') || args.includes('-h')) return 'help';
  const specs: OptionSpecs = command.options;
  const positionalSpecs: PositionalSpecs = command.positionals ?? {};
  const clash = Object.keys(positionalSpecs).find((name) => Object.hasOwn(specs, name));
  if (clash !== undefined) {
    // A mistake in the program, not on its command line: both would land on one key.
    throw new TypeError(`${command.program}: '${clash}' is both an option and a positional`);
  }
  const values: Record<string, unknown> = {};
  for (const spec of Object.keys(specs)) {
    if (!isValueOption(specs[spec]!)) values[spec] = false;
  }
  const seen = new Set<string>();
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      words.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const name = arg.slice(2, equals < 0 ? undefined : equals);
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (spec === undefined) {
      throw new UsageError(`unknown option --${name}`);
    }
    if (seen.has(name)) throw new UsageError(`--${name} is given twice; give it once`);
    seen.add(name);
    if (!isValueOption(spec)) {
      if (equals >= 0) throw new UsageError(`--${name} takes no value, got '${arg}'`);
      values[name] = true;
      continue;
    }
    let value: string | undefined;
    if (equals >= 0) {
      value = arg.slice(equals + 1);
    } else {
      // A following flag is never a value (`--out --steps 3` is a missing value), but a single
      // dash is: `--steps -3` is a number to reject, not an unknown option.
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        value = next;
        i += 1;
      }
    }
    if (value === undefined || value === '') {
      throw new UsageError(`--${name} needs a value: ${spec.type.accepts}`);
    }
    values[name] = parseWord(`--${name}`, spec.type, value);
  }
  readPositionals(positionalSpecs, words, values);
  return values as ParsedCommand<S, P>;
}

/**
 * The options of this process's command line; prints the help and exits 0 on --help, and prints
 * one line and exits 2 on a wrong one.
 */
export function readCommandLine<S extends OptionSpecs, P extends PositionalSpecs = NoPositionals>(
  command: CommandLine<S, P>,
  args: readonly string[] = process.argv.slice(2),
): ParsedCommand<S, P> {
  let parsed: ParsedCommand<S, P> | 'help';
  try {
    parsed = parseArguments(command, args);
  } catch (error) {
    exitWithError(command.program, error);
  }
  if (parsed === 'help') {
    console.log(formatHelp(command));
    process.exit(0);
  }
  return parsed;
}

/**
 * Checks that `dir` can take a run's files before the run starts: a file there is a usage error
 * naming `flag`. Whether the directory is writable is the caller's next check.
 */
export async function checkDirectoryOption(flag: string, dir: string): Promise<void> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing !== undefined && !existing.isDirectory()) {
    throw new UsageError(`--${flag} ${dir} is a file; pass a directory (it is created if missing)`);
  }
}

/**
 * Runs `check` (a preparation such as creating the output directory) and turns its failure into
 * a usage error naming `flag`, so the user learns which option to change.
 */
export async function checkOption(flag: string, check: () => Promise<unknown>): Promise<void> {
  try {
    await check();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError(`--${flag}: ${reason.replace(/^gradient-routing: /, '')}`);
  }
}

/**
 * Ends the process after an error: a {@link UsageError} as one line with the hint and exit code
 * 2; a library error as its message (it says what to fix; a stack would bury that), anything
 * else with its stack; both exit code 1.
 */
export function exitWithError(program: string, error: unknown): never {
  if (error instanceof UsageError) {
    console.error(`${program}: ${error.message.replace(/\.$/, '')}; ${HINT}`);
    process.exit(2);
  }
  if (error instanceof GradientRoutingError) {
    console.error(`${program}: ${error.message.replace(/^gradient-routing: /, '')}`);
    process.exit(1);
  }
  const failure = error instanceof Error ? error : new Error(String(error));
  console.error(`${program}: ${failure.message}\n${failure.stack ?? ''}`);
  process.exit(1);
}

/** `--backend` and `--threads`, the same in every example. */
export const backendOptions = {
  backend: {
    type: oneOf(NODE_BACKEND_CHOICES),
    help:
      'default auto: webgpu on a real GPU, else tensorflow (tfjs-node) if\n' +
      'installed, else wasm, else cpu; webgpu by name also runs on a software adapter',
  },
  threads: {
    type: integer(1, MAX_WASM_THREADS),
    help: `wasm threads (default: every core, at most ${MAX_WASM_THREADS}; 1 turns threads off)`,
  },
} satisfies OptionSpecs;

/**
 * Activates the backend that `--backend` and `--threads` chose; returns its name and how to
 * show it (`wasm, 2 thread(s)`).
 */
export async function startBackend(options: {
  readonly backend: BackendChoice | undefined;
  readonly threads: number | undefined;
}): Promise<{ name: BackendName; label: string }> {
  const name = await selectNodeBackend({
    backend: options.backend ?? 'auto',
    ...(options.threads === undefined ? {} : { threads: options.threads }),
  });
  return { name, label: name === 'wasm' ? `wasm, ${wasmThreadsCount()} thread(s)` : name };
}
