// Relative links of the package's Markdown, checked against the files a tarball holds: the
// packed README (and every shipped document it leads to) must not link to files npm users do
// not get. Used by test/package-contents.test.ts (npm pack --dry-run) and scripts/check-pack.mjs
// (the real tarball).
import path from 'node:path';

/**
 * The relative targets of a Markdown text's links and images (inline, reference definitions and
 * HTML `src`/`href`), without their `#anchor`, with the line each is on. Code blocks and code
 * spans are skipped: their brackets are code, not links.
 */
export function relativeLinks(markdown) {
  const links = [];
  let fenced = false;
  markdown.split('\n').forEach((raw, index) => {
    if (/^\s*(```|~~~)/.test(raw)) {
      fenced = !fenced;
      return;
    }
    if (fenced) return;
    const text = raw.replace(/`[^`]*`/g, '');
    const targets = [
      ...[...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]),
      ...[...text.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/g)].map((m) => m[1]),
      ...[...text.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((m) => m[1]),
    ];
    for (const target of targets) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
      links.push({ line: index + 1, target: decodeURI(target.split('#')[0]) });
    }
  });
  return links;
}

/**
 * Follows `start`'s relative links through the packed Markdown files and returns each link whose
 * target is neither a packed file nor a folder of packed files, as `file:line -> target`.
 *
 * @param packed - The tarball's paths, relative to the package root (`docs/era.md`).
 * @param read - Reads a packed file's text by that path.
 */
export function brokenLinks(packed, read, start = 'README.md') {
  const broken = [];
  const seen = new Set();
  const queue = [start];
  while (queue.length > 0) {
    const file = queue.shift();
    if (seen.has(file)) continue;
    seen.add(file);
    for (const { line, target } of relativeLinks(read(file))) {
      const resolved = path.posix
        .normalize(path.posix.join(path.posix.dirname(file), target))
        .replace(/\/$/, '');
      if (packed.has(resolved)) {
        if (resolved.endsWith('.md')) queue.push(resolved);
      } else if (![...packed].some((entry) => entry.startsWith(`${resolved}/`))) {
        broken.push(`${file}:${line} -> ${target}`);
      }
    }
  }
  return broken;
}
