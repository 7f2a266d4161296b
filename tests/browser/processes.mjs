// Child processes for the browser tests: free ports, starting programs with
// their output kept for failure messages, waiting on a condition with a
// deadline, stopping everything at the end, the frame of an nginx
// configuration that runs out of a temporary directory, and Debian's
// Chromium.

import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { chromium } from 'playwright-core';

const children = [];

/** A free loopback TCP port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `command`; its output is kept in `child.output` (and written to
 * `log`, when given), its end in `child.exitStatus` / `child.exited`.
 */
export function start(name, command, args, { cwd, env = {}, log } = {}) {
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.output = '';
  const keep = chunk => {
    child.output += chunk;
    if (log) writeFileSync(log, child.output);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  child.name = name;
  child.exited = new Promise(resolve =>
    child.on('exit', (code, signal) => {
      child.exitStatus = signal || code;
      resolve(child.exitStatus);
    }),
  );
  child.on('error', err => {
    child.output += `\n[spawn error: ${err.message}]`;
    child.exitStatus = 'spawn-error';
  });
  children.push(child);
  return child;
}

/** Polls `condition` until it returns a truthy value; fails with the child's output if it dies or time runs out. */
export async function waitFor(what, child, condition, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitStatus !== undefined) {
      throw new Error(`${child.name} exited (${child.exitStatus}) before ${what}:\n${child.output}`);
    }
    try {
      const value = await condition();
      if (value) return value;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${child ? `; ${child.name} said:\n${child.output}` : ''}`);
    }
    await new Promise(resolve => setTimeout(resolve, 50));
  }
}

/** SIGTERM to every child still running (SIGKILL after 5 s). */
export async function stopAll() {
  await Promise.all(
    children.map(async child => {
      if (child.exitStatus !== undefined) return;
      child.kill('SIGTERM');
      const done = await Promise.race([
        child.exited.then(() => true),
        new Promise(resolve => setTimeout(() => resolve(false), 5000)),
      ]);
      if (!done) child.kill('SIGKILL');
    }),
  );
}

process.on('exit', () => {
  for (const child of children) if (child.exitStatus === undefined) child.kill('SIGKILL');
});

/** A whole nginx configuration around `http` (server and upstream blocks), kept in `dir`. */
export function nginxConfig(dir, http) {
  const asRoot = process.getuid && process.getuid() === 0 ? 'user root root;' : '';
  return `${asRoot}
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/nginx-access.log;
  client_body_temp_path ${dir}/nginx-body;
  proxy_temp_path ${dir}/nginx-proxy;
  fastcgi_temp_path ${dir}/nginx-fastcgi;
  uwsgi_temp_path ${dir}/nginx-uwsgi;
  scgi_temp_path ${dir}/nginx-scgi;
${http}
}
`;
}

/** Debian's Chromium (or $CHROMIUM), headless. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A fresh browser context (no cookies) and a page in it. */
export async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.setDefaultNavigationTimeout(20_000);
  return { context, page };
}

/** Closes the browser, stops every child and removes `dir` (kept with AADGATE_KEEP_TMP set). */
export async function tearDown(browser, dir) {
  try {
    await browser?.close();
  } finally {
    await stopAll();
    if (dir && !process.env.AADGATE_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
  }
}
