// The examples' one command-line style: the shared parser and progress lines as units, then each
// case from issue 18 (and its like for era:study) run as the user runs it (a child process), which must stop with exit code 2
// and one line naming the flag, before any work.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  backendOptions,
  formatHelp,
  integer,
  listOf,
  numberIn,
  oneOf,
  parseArguments,
  positiveNumber,
  text,
  UsageError,
} from '../examples/cli-args.js';
import { etaEstimator, progressReporter } from '../examples/cli-progress.js';
import { MAX_WASM_THREADS } from '../src/index.js';
import { NODE_BACKEND_CHOICES } from '../src/node/index.js';

const scratch = mkdtempSync(path.join(tmpdir(), 'gr-cli-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const command = {
  program: 'demo',
  usage: 'demo [options]',
  options: {
    steps: { type: integer(1), help: 'training steps' },
    lr: { type: positiveNumber, help: 'learning rate' },
    fractions: { type: listOf(numberIn(0, 1), 'numbers in [0, 1]', '0.5,1'), help: 'shares' },
    mode: { type: oneOf(['fast', 'slow']), help: 'how' },
    out: { type: text('DIR', 'a directory'), help: 'where' },
    ...backendOptions,
    quiet: { help: 'say less' },
  },
};

/** The UsageError message of a command line (fails the test if it parses). */
function usageError(...args: string[]): string {
  try {
    parseArguments(command, args);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as UsageError).message;
  }
  throw new Error(`${args.join(' ')} parsed`);
}

describe('parseArguments', () => {
  it('reads values after their flag or joined with =, and switches', () => {
    expect(
      parseArguments(command, ['--steps', '20', '--lr=0.5', '--fractions', '0.25, 1', '--quiet']),
    ).toEqual({ steps: 20, lr: 0.5, fractions: [0.25, 1], quiet: true });
    expect(parseArguments(command, [])).toEqual({ quiet: false });
    expect(parseArguments(command, ['--mode', 'slow', '--help'])).toBe('help');
    expect(parseArguments(command, ['-h'])).toBe('help');
  });

  it('reads a negative number as a value and rejects it naming the flag', () => {
    expect(usageError('--steps', '-3')).toBe("--steps needs an integer >= 1, got '-3'");
    expect(usageError('--lr', '-1e-3')).toBe("--lr needs a positive number, got '-1e-3'");
    expect(usageError('--steps=-3')).toBe("--steps needs an integer >= 1, got '-3'");
  });

  it('names the flag and what it accepts for every kind of value', () => {
    expect(usageError('--steps', '2.5')).toMatch(/^--steps needs an integer >= 1, got '2.5'$/);
    expect(usageError('--lr', 'Infinity')).toMatch(/^--lr needs a positive number/);
    expect(usageError('--fractions', ',')).toBe(
      "--fractions needs numbers in [0, 1] separated by commas (e.g. 0.5,1), got an empty entry in ','",
    );
    expect(usageError('--fractions', '0.5,')).toMatch(
      /^--fractions needs .* an empty entry in '0.5,'$/,
    );
    expect(usageError('--fractions', '0.5,1.5')).toMatch(/, got '1.5' in '0.5,1.5'$/);
    expect(usageError('--fractions', '2')).toMatch(/, got '2'$/);
    expect(usageError('--mode', 'medium')).toBe("--mode needs one of fast, slow, got 'medium'");
    expect(usageError('--threads', '99')).toBe(
      `--threads needs an integer from 1 to ${MAX_WASM_THREADS}, got '99'`,
    );
    expect(usageError('--threads', '0')).toMatch(/^--threads needs an integer from 1 to 8/);
    expect(usageError('--backend', 'bogus')).toBe(
      `--backend needs one of ${NODE_BACKEND_CHOICES.join(', ')}, got 'bogus'`,
    );
  });

  it('rejects missing values, unknown options, stray words and repeats', () => {
    expect(usageError('--steps')).toBe('--steps needs a value: an integer >= 1');
    expect(usageError('--out', '--steps', '3')).toBe('--out needs a value: a directory');
    expect(usageError('--out=')).toBe('--out needs a value: a directory');
    expect(usageError('--frobnicate')).toBe('unknown option --frobnicate');
    expect(usageError('--constructor')).toBe('unknown option --constructor');
    expect(usageError('steps')).toBe("unexpected argument 'steps'; options start with --");
    expect(usageError('--quiet=yes')).toBe("--quiet takes no value, got '--quiet=yes'");
    expect(usageError('--steps', '1', '--steps', '2')).toBe('--steps is given twice; give it once');
  });
});

describe('positionals', () => {
  const study = {
    program: 'study',
    usage: 'study MODE [DIR...] [options]',
    positionals: {
      MODE: { type: oneOf(['scale', 'report']), help: 'which study' },
      DIR: { each: text('DIR', 'a directory'), help: 'folders' },
    },
    options: { steps: { type: integer(1), help: 'training steps' } },
  };
  const studyError = (...args: string[]): string => {
    try {
      parseArguments(study, args);
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      return (error as UsageError).message;
    }
    throw new Error(`${args.join(' ')} parsed`);
  };

  it('reads words among the options in order, the repeated one taking the rest', () => {
    expect(parseArguments(study, ['report', 'a', '--steps', '7', 'b'])).toEqual({
      MODE: 'report',
      DIR: ['a', 'b'],
      steps: 7,
    });
    expect(parseArguments(study, ['--steps=2', 'scale'])).toEqual({
      MODE: 'scale',
      DIR: [],
      steps: 2,
    });
    expect(parseArguments(study, ['scale', '--help'])).toBe('help');
  });

  it('names the positional and what it accepts, and a missing one', () => {
    expect(studyError('bogus')).toBe("MODE needs one of scale, report, got 'bogus'");
    expect(studyError()).toBe('missing MODE: one of scale, report');
    expect(studyError('--steps', '3')).toBe('missing MODE: one of scale, report');
    // A flag's value is never a positional, even a negative number: it is the flag's to reject.
    expect(studyError('scale', '--steps', '-3')).toBe("--steps needs an integer >= 1, got '-3'");
    expect(studyError('report', '')).toBe("DIR needs a directory, got ''");
  });

  it('rejects words beyond the single positionals when none repeats', () => {
    const single = { ...study, positionals: { MODE: study.positionals.MODE } };
    expect(parseArguments(single, ['scale'])).toEqual({ MODE: 'scale' });
    try {
      parseArguments(single, ['scale', 'extra']);
      expect.unreachable('scale extra parsed');
    } catch (error) {
      expect((error as UsageError).message).toBe(
        "unexpected argument 'extra'; options start with --",
      );
    }
  });

  it('refuses a name that is both an option and a positional', () => {
    const clash = { ...study, positionals: { steps: study.positionals.MODE } };
    expect(() => parseArguments(clash, ['scale'])).toThrow(TypeError);
  });

  it('lists the positionals first in --help with what they accept', () => {
    const help = formatHelp(study).split('\n');
    expect(help[2]).toMatch(/^ {2}MODE +which study$/);
    expect(help[3]).toMatch(/^ +accepts one of scale, report$/);
    expect(help[4]).toMatch(/^ {2}DIR\.\.\. +folders$/);
    expect(help[5]).toMatch(/^ +accepts a directory$/);
    expect(help[6]).toMatch(/^ {2}--steps N +training steps$/);
  });
});

describe('formatHelp', () => {
  const help = formatHelp(command);

  it('lists every option with exactly what it accepts', () => {
    expect(help.split('\n')[0]).toBe('Usage: demo [options]');
    for (const name of [...Object.keys(command.options), 'help']) {
      expect(help).toMatch(new RegExp(`^ {2}--${name}\\b`, 'm'));
    }
    expect(help).toContain(`--backend ${NODE_BACKEND_CHOICES.join('|')}`);
    expect(NODE_BACKEND_CHOICES).toEqual(['auto', 'webgpu', 'tensorflow', 'wasm', 'cpu']);
    expect(help).toContain(`accepts an integer from 1 to ${MAX_WASM_THREADS}`);
    expect(help).toContain('accepts an integer >= 1');
    expect(help).toContain('accepts numbers in [0, 1] separated by commas (e.g. 0.5,1)');
    // A placeholder that lists the choices is not repeated below it.
    expect(help).toContain('--mode fast|slow');
    expect(help).not.toContain('accepts one of fast, slow');
  });
});

describe('etaEstimator', () => {
  it('waits out the slow first step, then estimates from the pace since it', () => {
    let clock = 0;
    const eta = etaEstimator(() => clock);
    // The first step took 60 s (compiling): no estimate from it.
    clock = 60_000;
    expect(eta(1, 101)).toBeUndefined();
    // 4 more steps of 1 s: 4 s passed but only 4 units.
    for (let step = 2; step <= 5; step++) {
      clock += 1000;
      expect(eta(step, 101)).toBeUndefined();
    }
    clock += 1000;
    // 5 units in 5 s since the first step: 1 s per step, 95 steps left.
    expect(eta(6, 101)).toBeCloseTo(95, 9);
  });

  it('needs 3 s even for fast steps, and one unit of 10 s for slow ones', () => {
    let clock = 0;
    const fast = etaEstimator(() => clock);
    fast(1, 1000);
    clock = 2000;
    expect(fast(50, 1000)).toBeUndefined();
    clock = 3000;
    expect(fast(61, 1000)).toBeCloseTo((3 / 60) * 939, 9);
    clock = 0;
    const slow = etaEstimator(() => clock);
    slow(1, 4);
    clock = 9000;
    expect(slow(1, 4)).toBeUndefined();
    clock = 12_000;
    expect(slow(2, 4)).toBeCloseTo(24, 9);
  });
});

describe('progressReporter', () => {
  it('prints a line every few seconds and the last one, off a terminal', () => {
    let clock = 0;
    const lines: string[] = [];
    const progress = progressReporter('demo', {
      interactive: false,
      everySeconds: 5,
      now: () => clock,
      write: (line) => lines.push(line),
    });
    for (let step = 1; step <= 20; step++) {
      clock = step * 1000;
      progress.update({ done: step, total: 20, label: `step ${step}/20` });
    }
    expect(lines).toEqual([
      'demo: step 1/20\n',
      // 5 steps of 1 s since step 1: 1 s per step, 14 steps left.
      'demo: step 6/20 ETA 14s\n',
      'demo: step 11/20 ETA 9s\n',
      'demo: step 16/20 ETA 4s\n',
      'demo: step 20/20\n',
    ]);
  });

  it('ends a bar drawn in place before a line of its own, on a terminal', () => {
    const written: string[] = [];
    const progress = progressReporter('demo', {
      interactive: true,
      now: () => 0,
      write: (text) => written.push(text),
    });
    progress.update({ done: 1, total: 4, label: 'step 1/4' });
    progress.say('evaluating…');
    expect(written[0]).toMatch(/^\rdemo: \[######\.{18}\] step 1\/4 +$/);
    expect(written[1]).toBe('\ndemo: evaluating…\n');
  });
});

// Skipped under mutation testing: the CLIs run in child processes, which never see the mutant.
describe.skipIf(process.env.GR_MUTATION === '1')('the example CLIs (issue 18 cases)', () => {
  const cli = async (
    example: 'mnist-split' | 'era-unlearning' | 'era-study',
    ...args: string[]
  ): Promise<{ code: number; stdout: string; stderr: string }> => {
    const file = path.join('examples', `${example}.ts`);
    return promisify(execFile)(process.execPath, ['--import', 'tsx', file, ...args]).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
  };

  /** Exit code 2 and one line naming the problem and the hint: nothing else was started. */
  const expectUsageError = (
    result: { code: number; stdout: string; stderr: string },
    program: string,
    message: RegExp,
  ) => {
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^${program}: ${message.source}`));
    expect(lines[0]).toMatch(/; run with --help for every option$/);
  };

  it('era --label-fractions , : exit 2 before the run header', async () => {
    expectUsageError(
      await cli('era-unlearning', '--label-fractions', ','),
      'era',
      /--label-fractions needs numbers in \[0, 1\] separated by commas .*got an empty entry in ','/,
    );
  });

  it('era --backend bogus : exit 2 with every backend it accepts', async () => {
    expectUsageError(
      await cli('era-unlearning', '--backend', 'bogus'),
      'era',
      /--backend needs one of auto, webgpu, tensorflow, wasm, cpu, got 'bogus'/,
    );
  });

  it('era --steps -3 : a negative number is a value, rejected by its flag', async () => {
    expectUsageError(
      await cli('era-unlearning', '--steps', '-3'),
      'era',
      /--steps needs an integer >= 1, got '-3'/,
    );
  });

  it('era --threads is an option: 1 is accepted, 9 is not', async () => {
    // Accepted: the next problem reported is the other flag's.
    expectUsageError(
      await cli('era-unlearning', '--threads', '1', '--steps', '0'),
      'era',
      /--steps needs/,
    );
    expectUsageError(
      await cli('era-unlearning', '--threads', '9'),
      'era',
      /--threads needs an integer from 1 to 8, got '9'/,
    );
  });

  it('mnist-split --threads 99 : exit 2 before loading anything, one line and no usage', async () => {
    expectUsageError(
      await cli('mnist-split', '--threads', '99'),
      'mnist-split',
      /--threads needs an integer from 1 to 8, got '99'/,
    );
  });

  it('--out onto a file names --out in both CLIs, and --save-model names itself', async () => {
    const file = path.join(scratch, 'a-file');
    writeFileSync(file, 'not a directory');
    for (const [example, program] of [
      ['mnist-split', 'mnist-split'],
      ['era-unlearning', 'era'],
    ] as const) {
      expectUsageError(
        await cli(example, '--preset', 'smoke', '--out', file),
        program,
        /--out .*a-file is a file; pass a directory/,
      );
    }
    expectUsageError(
      await cli(
        'mnist-split',
        '--preset',
        'smoke',
        '--out',
        path.join(scratch, 'out'),
        '--save-model',
        file,
      ),
      'mnist-split',
      /--save-model .*a-file is a file; pass a directory/,
    );
    expect(readFileSync(file, 'utf8')).toBe('not a directory');
  });

  it('era:study bogus : an unknown mode, exit 2 naming MODE and the modes', async () => {
    expectUsageError(
      await cli('era-study', 'bogus'),
      'era:study',
      /MODE needs one of mechanism, scale, report, got 'bogus'/,
    );
    expectUsageError(await cli('era-study'), 'era:study', /missing MODE: one of mechanism/);
  });

  it('era:study --steps -3 : a negative number is a value, rejected by its flag', async () => {
    expectUsageError(
      await cli('era-study', 'scale', '--steps', '-3'),
      'era:study',
      /--steps needs integers >= 1 separated by commas .*, got '-3'/,
    );
    expectUsageError(
      await cli('era-study', 'scale', '--steps', '150,-3'),
      'era:study',
      /--steps needs integers >= 1 .*, got '-3' in '150,-3'/,
    );
  });

  it('era:study --seed -1 : exit 2 naming --seed and what it accepts', async () => {
    expectUsageError(
      await cli('era-study', 'scale', '--seed', '-1'),
      'era:study',
      /--seed needs an integer >= 0, got '-1'/,
    );
  });

  it('era:study --backend bogus and --threads 9 : exit 2 with what the flag accepts', async () => {
    expectUsageError(
      await cli('era-study', 'mechanism', '--backend', 'bogus'),
      'era:study',
      /--backend needs one of auto, webgpu, tensorflow, wasm, cpu, got 'bogus'/,
    );
    expectUsageError(
      await cli('era-study', 'mechanism', '--threads', '9'),
      'era:study',
      /--threads needs an integer from 1 to 8, got '9'/,
    );
  });

  it('era:study --out onto a file names --out, in a study and in report', async () => {
    const file = path.join(scratch, 'study-file');
    writeFileSync(file, 'not a directory');
    expectUsageError(
      await cli('era-study', 'mechanism', '--out', file),
      'era:study',
      /--out .*study-file is a file; pass a directory/,
    );
    expectUsageError(
      await cli('era-study', 'report', scratch, '--out', file),
      'era:study',
      /--out .*study-file is a file; pass a directory/,
    );
    expect(readFileSync(file, 'utf8')).toBe('not a directory');
  });

  it('era:study report: needs folders holding a study.json; the studies take none', async () => {
    expectUsageError(
      await cli('era-study', 'report'),
      'era:study',
      /report needs the folders of the points/,
    );
    expectUsageError(
      await cli('era-study', 'report', scratch),
      'era:study',
      /DIR .* has no readable study\.json/,
    );
    expectUsageError(
      await cli('era-study', 'scale', scratch),
      'era:study',
      /unexpected argument '.*'; only report takes folders/,
    );
  });

  it('--help lists --backend with webgpu and --threads 1-8 in every CLI', async () => {
    for (const example of ['mnist-split', 'era-unlearning', 'era-study'] as const) {
      const { code, stdout } = await cli(example, '--help');
      expect(code).toBe(0);
      expect(stdout).toContain('--backend auto|webgpu|tensorflow|wasm|cpu');
      expect(stdout).toMatch(/--threads N[\s\S]*accepts an integer from 1 to 8/);
    }
  });
});
