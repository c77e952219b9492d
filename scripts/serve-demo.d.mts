// Types of serve-demo.mjs, for the TypeScript browser tests that reuse it.
import type { Server } from 'node:http';

export declare const ISOLATION_HEADERS: Readonly<Record<string, string>>;
export declare function serveStatic(
  dir: string,
  port?: number,
  options?: { isolated?: boolean },
): Promise<{ server: Server; url: string }>;
