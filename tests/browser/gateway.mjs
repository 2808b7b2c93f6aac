// Spawns one real `modelrouter serve --demo` for the browser tests, as tests/sdk/conftest.py does
// for the SDK suites: a fresh data directory, a random demo key, port 0 (the startup banner says
// which port it got), and its stdout/stderr kept in the output directory for debugging. Each
// journey starts its own, so journeys may run side by side.
//
// The binary comes from MODELROUTER_BIN (default: target/debug/modelrouter in the repository).

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const READY_DEADLINE_MS = 30_000;
const SHUTDOWN_DEADLINE_MS = 20_000;
const CLI_DEADLINE_MS = 30_000;
const CALL_DEADLINE_MS = 15_000;
const BANNER = /Model Router demo on (http:\/\/127\.0\.0\.1:\d+)/;

function binary() {
  const configured = process.env.MODELROUTER_BIN;
  let path = configured || join(REPO_ROOT, 'target', 'debug', 'modelrouter');
  if (!isAbsolute(path)) path = resolve(path);
  try {
    accessSync(path, constants.X_OK);
  } catch {
    throw new Error(`modelrouter binary not found at ${path}: run \`cargo build\` and/or set MODELROUTER_BIN`);
  }
  return path;
}

/**
 * Starts the gateway and resolves once its banner names the address it listens on. Its logs are
 * `<outDir>/<prefix>gateway.stdout.log` and `.stderr.log`.
 *
 * Returns { url, apiKey, logs(), cli(...args), stop() }: cli runs a `modelrouter` command against
 * the gateway's own data directory (the embedded SQLite store, which a second process may write)
 * and resolves to its stdout; stop() sends SIGTERM and resolves to the exit code.
 */
export async function startGateway(outDir, prefix = '') {
  const bin = binary();
  const workdir = mkdtempSync(join(tmpdir(), 'modelrouter-browser-'));
  const dataDir = join(workdir, 'data');
  const apiKey = 'sk-browser-tests-' + randomBytes(16).toString('hex');
  const env = { ...process.env, MODELROUTER_DEMO_API_KEY: apiKey };
  // Settings that could point the gateway elsewhere must not leak in from the environment.
  for (const name of ['MODELROUTER_DATABASE_URL', 'MODELROUTER_LISTEN', 'MODELROUTER_DATA_DIR']) {
    delete env[name];
  }
  const stdoutPath = join(outDir, `${prefix}gateway.stdout.log`);
  const stderrPath = join(outDir, `${prefix}gateway.stderr.log`);
  const child = spawn(
    bin,
    ['--data-dir', dataDir, 'serve', '--demo', '--listen', '127.0.0.1:0'],
    { cwd: workdir, env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stdoutFile = createWriteStream(stdoutPath);
  const stderrFile = createWriteStream(stderrPath);
  child.stdout.pipe(stdoutFile);
  child.stderr.pipe(stderrFile);
  const exited = new Promise((done) => child.once('exit', (code, signal) => done({ code, signal })));

  const logs = (limit = 4000) => {
    const tail = (path) => {
      try {
        return readFileSync(path, 'utf8').slice(-limit);
      } catch (error) {
        return `<unreadable: ${error.message}>`;
      }
    };
    return `--- gateway stdout (${stdoutPath}) ---\n${tail(stdoutPath)}\n` +
      `--- gateway stderr (${stderrPath}) ---\n${tail(stderrPath)}`;
  };

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    let timer;
    const deadline = new Promise((done) => {
      timer = setTimeout(done, SHUTDOWN_DEADLINE_MS, 'timeout');
    });
    const outcome = await Promise.race([exited, deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      child.kill('SIGKILL');
      await exited;
    }
    await Promise.all([stdoutFile, stderrFile].map((f) => new Promise((done) => f.end(done))));
    rmSync(workdir, { recursive: true, force: true });
    return outcome === 'timeout' ? null : outcome.code;
  };

  // The banner is printed once the listener is bound and the demo data is seeded.
  const url = await new Promise((done, fail) => {
    let seen = '';
    const timer = setTimeout(() => fail(new Error(`no startup banner within ${READY_DEADLINE_MS} ms`)), READY_DEADLINE_MS);
    const onData = (chunk) => {
      seen += chunk.toString('utf8');
      const match = BANNER.exec(seen);
      if (match) {
        clearTimeout(timer);
        child.stdout.off('data', onData);
        done(match[1]);
      }
    };
    child.stdout.on('data', onData);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      fail(new Error(`gateway exited early (code ${code}, signal ${signal})`));
    });
  }).catch(async (error) => {
    await stop();
    throw new Error(`${error.message}\n${logs()}`);
  });

  const cli = async (...args) => {
    try {
      const { stdout } = await promisify(execFile)(bin, ['--data-dir', dataDir, ...args], {
        cwd: workdir, env, timeout: CLI_DEADLINE_MS,
      });
      return stdout;
    } catch (error) {
      throw new Error(`modelrouter ${args.join(' ')} failed (code ${error.code}, signal ${error.signal}):\n` +
        `${error.stdout ?? ''}${error.stderr ?? ''}`);
    }
  };

  return { url, apiKey, logs, cli, stop };
}

/**
 * A chat call as a customer's program makes it, in the OpenAI or the Anthropic protocol, with
 * the API key `secret`. Returns { status, requestId, input, output, json, raw }.
 */
export async function callModel(url, secret, model, protocol = 'openai') {
  const messages = [{ role: 'user', content: 'Hello' }];
  const request = protocol === 'openai'
    ? {
      path: '/v1/chat/completions',
      headers: { authorization: `Bearer ${secret}` },
      body: { model, messages },
    }
    : {
      path: '/v1/messages',
      headers: { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
      body: { model, max_tokens: 64, messages },
    };
  const response = await fetch(url + request.path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...request.headers },
    body: JSON.stringify(request.body),
    signal: AbortSignal.timeout(CALL_DEADLINE_MS),
  });
  const raw = await response.text();
  let json = null;
  try {
    json = JSON.parse(raw);
  } catch {
    // Left null: the caller's assertions show the raw body.
  }
  const usage = json?.usage ?? {};
  return {
    status: response.status,
    requestId: response.headers.get('request-id'),
    input: usage.prompt_tokens ?? usage.input_tokens,
    output: usage.completion_tokens ?? usage.output_tokens,
    json,
    raw,
  };
}
