#!/usr/bin/env node
// ArLocal (a local Arweave gateway) for the integration tests, bound to 127.0.0.1.
//
//   node arlocal.js <port> [--watch-stdin]     (port 0 picks a free port)
//
// ArLocal's own CLI listens on every interface and keeps its database and a
// `logs` file under the working directory; this wrapper binds the loopback
// interface only, runs ArLocal inside a fresh temporary directory (its
// sqlite database in a `db` folder there; `:memory:` does not work) and
// removes that directory on exit. Once the server listens it prints one line:
//
//   ARLOCAL_READY http://127.0.0.1:<port>
//
// It stops on SIGTERM/SIGINT and, with --watch-stdin, when its stdin closes
// (so a test runner that dies without cleaning up does not leave it running).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');

const args = process.argv.slice(2);
const watchStdin = args.includes('--watch-stdin');
const positional = args.filter((a) => !a.startsWith('--'));
const port = Number(positional[0]);
if (positional.length !== 1 || positional[0] === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: node arlocal.js <port> [--watch-stdin]');
  process.exit(2);
}

const ArLocal = require('arlocal').default;

const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'arlocal-'));
process.chdir(workDir); // ArLocal writes ./logs relative to the working directory

function removeWorkDir() {
  try {
    process.chdir(os.tmpdir());
    fs.rmSync(workDir, { recursive: true, force: true });
  } catch (e) {
    // best effort
  }
}

const arlocal = new ArLocal(port || 1984, false, path.join(workDir, 'db'), false);

// Koa's listen() forwards its arguments to http.Server#listen: add the host.
// The requested port is used as given (0 included).
const koaListen = arlocal.app.listen.bind(arlocal.app);
arlocal.app.listen = (_ignoredPort, callback) =>
  koaListen(port, '127.0.0.1', function onListening() {
    arlocal.port = this.address().port; // ArLocal logs this.port
    if (callback) callback();
  });

let stopping = false;
async function stop(code) {
  if (stopping) return;
  stopping = true;
  const server = arlocal.getServer();
  try {
    if (server && server.listening) {
      await new Promise((resolve) => {
        server.close(() => resolve());
        if (server.closeAllConnections) server.closeAllConnections();
      });
    }
    await arlocal.connection.destroy();
  } catch (e) {
    // exiting anyway
  }
  removeWorkDir();
  process.exit(code);
}

process.on('SIGTERM', () => stop(0));
process.on('SIGINT', () => stop(0));
if (watchStdin) {
  process.stdin.on('end', () => stop(0));
  process.stdin.on('error', () => stop(0));
  process.stdin.resume();
}

(async () => {
  await arlocal.start();
  const server = arlocal.getServer();
  server.on('error', (err) => {
    console.error(`arlocal: cannot listen on 127.0.0.1:${port}: ${err.message}`);
    stop(1);
  });
  if (!server.listening) {
    await new Promise((resolve) => server.once('listening', resolve));
  }
  const address = server.address();
  process.stdout.write(`ARLOCAL_READY http://127.0.0.1:${address.port}\n`);
})().catch((err) => {
  console.error(`arlocal: failed to start: ${err && err.stack ? err.stack : err}`);
  stop(1);
});
