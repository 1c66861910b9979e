#!/usr/bin/env node
// Drives the web chat page (/chat/) in headless Debian chromium through playwright-core, as a
// person would: log in through the form, open the chat with a contact from the roster, send a
// message, wait for the reply to be shown, take a screenshot.
//
// Usage: node browser_chat.js '<json>' with
//   url         the page, e.g. http://127.0.0.1:5280/chat/
//   jid, password, peer (bare JID of the contact), message, reply (text the peer will send)
//   screenshot  PNG path, written on success and on failure
//   chromium    executable (default /usr/bin/chromium)
//   timeout_ms  per step (default 30000)
//   insecure    true: accept the server's self-signed certificate
// Progress goes to stderr. The last stdout line is a JSON report: ok, error, step, requests
// (every URL the page asked for), websockets, console_errors, page_errors.
'use strict';

const { chromium } = require('playwright-core');

const opts = JSON.parse(process.argv[2] || '{}');
const timeout = opts.timeout_ms || 30000;
const report = {
    ok: false,
    step: 'launch',
    requests: [],
    websockets: [],
    console_errors: [],
    page_errors: [],
};

function step(name) {
    report.step = name;
    process.stderr.write(`browser_chat: ${name}\n`);
}

async function main() {
    const browser = await chromium.launch({
        executablePath: opts.chromium || '/usr/bin/chromium',
        headless: true,
        // root in CI: chromium's sandbox needs user namespaces a container may not give.
        args: ['--no-sandbox', '--disable-dev-shm-usage'],
    });
    try {
        const context = await browser.newContext({
            viewport: { width: 1280, height: 800 },
            ignoreHTTPSErrors: !!opts.insecure,
        });
        context.on('request', (r) => report.requests.push(r.url()));
        const page = await context.newPage();
        page.setDefaultTimeout(timeout);
        page.on('websocket', (ws) => report.websockets.push(ws.url()));
        page.on('console', (m) => {
            if (m.type() === 'error') {
                report.console_errors.push(m.text());
            }
        });
        page.on('pageerror', (e) => report.page_errors.push(String(e)));
        try {
            await drive(page);
            report.ok = true;
        } finally {
            if (opts.screenshot) {
                await page.screenshot({ path: opts.screenshot }).catch((e) => {
                    process.stderr.write(`browser_chat: no screenshot: ${e}\n`);
                });
            }
        }
    } finally {
        await browser.close();
    }
}

async function drive(page) {
    step(`open ${opts.url}`);
    await page.goto(opts.url, { waitUntil: 'load' });

    step('log in');
    const form = page.locator('converse-login-form form');
    await form.locator('input[name="jid"]').fill(opts.jid);
    await form.locator('input[name="password"]').fill(opts.password);
    await form.locator('button[type="submit"]').click();

    step(`open the chat with ${opts.peer} from the roster`);
    const contact = page.locator(`a.open-chat[data-jid="${opts.peer}"]`);
    await contact.waitFor({ state: 'visible' });
    await contact.click();

    step('send the message');
    const chat = page.locator(`converse-chat[jid="${opts.peer}"]`);
    const textarea = chat.locator('textarea.chat-textarea');
    await textarea.waitFor({ state: 'visible' });
    await textarea.fill(opts.message);
    await textarea.press('Enter');
    await chat.locator('.chat-msg__text', { hasText: opts.message }).first().waitFor();
    process.stdout.write(JSON.stringify({ sent: true }) + '\n');

    step('wait for the reply');
    await chat.locator('.chat-msg__text', { hasText: opts.reply }).first().waitFor();
    step('done');
}

main()
    .catch((e) => {
        report.error = String(e && e.stack ? e.stack : e);
    })
    .finally(() => {
        process.stdout.write(JSON.stringify(report) + '\n');
        process.exitCode = report.ok ? 0 : 1;
    });
