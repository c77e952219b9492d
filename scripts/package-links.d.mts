// Types of package-links.mjs, for test/package-contents.test.ts.
export interface MarkdownLink {
  readonly line: number;
  readonly target: string;
}
export declare function relativeLinks(markdown: string): MarkdownLink[];
export declare function brokenLinks(
  packed: ReadonlySet<string>,
  read: (file: string) => string,
  start?: string,
): string[];
