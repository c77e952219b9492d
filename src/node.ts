/**
 * Node-only parts of gradient-routing: backend selection with tfjs-node and the installed wasm
 * files, IDX/MNIST data, saving models to directories and writing reports.
 *
 * @packageDocumentation
 */
export { installedWasmDirectory, selectBackend } from './backend/node.js';
