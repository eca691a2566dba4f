// keygate's reference web client (www/) end to end in headless Debian Chromium.
//
//   node flow.mjs BASE_URL [SCREENSHOT_DIR]
//
// BASE_URL is where the page is served, with the API at BASE_URL + "api/"
// (e.g. http://127.0.0.1:8080/ from scripts/run, or the stack that
// tests/integration/test_e2e_browser.py starts). keygate must run there with
// cookie_secure = 0, that origin in allowed_origins, and login_max_failures
// of at most 7 (the throttling step needs a 429 within 8 attempts).
//
// The flow: register (with a too-short password, a taken username), log in
// (wrong password first), see the user, open a second session from another
// browser context and revoke it from the first (the second sees on reload
// that it is logged out), change the password, log out, log in with the new
// password, get throttled (429 with the wait), and see the messages for
// errors the stack cannot easily produce (503, 403 csrf_failed, 413, 415, a
// network failure) from faked responses. Personal access tokens: create one
// (a wrong current password and a bad name refused first), see it shown
// once, use it from Node.js with Authorization: Bearer, try its name again
// (409), revoke it from the page and see it refused; a second one is revoked
// by the password change. Throughout, no token or secret may be readable by
// scripts: not in document.cookie (even on a page under the cookie's path),
// localStorage, sessionStorage, the page or a response body, with one
// exception: the answer of POST /tokens, and the page's display of that
// token, until it is dismissed or the page is left.
//
// Exit status 0 when every step passed, 1 on a failed step, 2 on bad usage,
// 3 when the overall time limit ran out. Screenshots (PNG) go to
// SCREENSHOT_DIR (default: a new temporary directory); their directory is
// printed. Chromium is Debian's /usr/bin/chromium (KG_CHROMIUM overrides);
// playwright-core never downloads a browser.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const TOTAL_MS = 180_000;       // the whole flow
const STEP_MS = 10_000;         // one wait for the page
const TOKEN_RE = /kg_1_[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{49}/;
const CHROMIUM = process.env.KG_CHROMIUM || '/usr/bin/chromium';

if (process.argv.length < 3 || !/^https?:\/\//.test(process.argv[2])) {
	console.error('usage: node flow.mjs BASE_URL [SCREENSHOT_DIR]');
	process.exit(2);
}
const BASE = process.argv[2].replace(/\/*$/, '/');
const ORIGIN = new URL(BASE).origin;
const OUT = process.argv[3] || fs.mkdtempSync(path.join(os.tmpdir(), 'keygate-e2e-'));
fs.mkdirSync(OUT, { recursive: true });

const watchdog = setTimeout(() => {
	console.error(`flow: not finished after ${TOTAL_MS / 1000} s: giving up`);
	process.exit(3);
}, TOTAL_MS);
watchdog.unref();

// ---------------------------------------------------------------------------
// bookkeeping

const pages = new Map();        // name -> page, for failure screenshots
const apiRequests = [];         // every request to the API: {page, method, url, headers}
const apiResponses = [];        // promises of {page, method, url, status, text}: every answer of the API
const consoleProblems = [];     // console errors and page errors
let shotNo = 0;
let stepNo = 0;

function fail(msg) {
	throw new Error(msg);
}

function check(cond, msg) {
	if (!cond)
		fail(msg);
}

async function shot(page, name) {
	const file = path.join(OUT, String(++shotNo).padStart(2, '0') + '-' + name + '.png');
	await page.screenshot({ path: file, fullPage: true, timeout: STEP_MS });
	console.log(`  screenshot ${file}`);
	return file;
}

async function step(name, fn) {
	stepNo++;
	try {
		await fn();
		console.log(`ok ${stepNo} - ${name}`);
	} catch (e) {
		console.log(`not ok ${stepNo} - ${name}`);
		console.log('  ' + String(e && e.stack || e).split('\n').join('\n  '));
		for (const [pname, page] of pages) {
			if (page.isClosed())
				continue;
			try {
				await shot(page, `FAILED-${pname}`);
				const text = await page.evaluate(() => document.body.innerText);
				console.log(`  --- what ${pname} shows ---\n  ` + text.split('\n').join('\n  '));
			} catch (e2) {
				console.log(`  (no screenshot of ${pname}: ${e2.message})`);
			}
		}
		throw e;
	}
}

function watch(page, name) {
	pages.set(name, page);
	page.setDefaultTimeout(STEP_MS);
	page.setDefaultNavigationTimeout(STEP_MS);
	page.on('request', (r) => {
		if (r.url().includes('/api/'))
			apiRequests.push({ page: name, method: r.method(), url: r.url(), headers: r.headers() });
	});
	page.on('response', (r) => {
		if (r.url().includes('/api/'))
			apiResponses.push(r.text().catch(() => '').then((text) => ({
				page: name, method: r.request().method(), url: r.url(), status: r.status(), text,
			})));
	});
	page.on('console', (m) => {
		// Chromium reports every 4xx/5xx fetch as "Failed to load resource":
		// those are the page's expected failures, not problems.
		if (m.type() === 'error' && !/Failed to load resource/.test(m.text()))
			consoleProblems.push(`${name}: console: ${m.text()}`);
	});
	page.on('pageerror', (e) => consoleProblems.push(`${name}: uncaught: ${e.message}`));
	return page;
}

// ---------------------------------------------------------------------------
// reading the page

async function visible(page, sel) {
	return page.locator(sel).first().isVisible();
}

// Wait until the element sel is visible and its text matches re.
async function waitText(page, sel, re, timeout = STEP_MS) {
	try {
		await page.waitForFunction(([s, src, flags]) => {
			const el = document.querySelector(s);
			return el !== null && el.offsetParent !== null && new RegExp(src, flags).test(el.textContent);
		}, [sel, re.source, re.flags], { timeout, polling: 50 });
	} catch (e) {
		const now = await page.locator(sel).first().textContent({ timeout: 1000 }).catch(() => null);
		fail(`${sel}: expected text ${re}, have ${JSON.stringify(now)}`);
	}
	return (await page.locator(sel).first().textContent()).trim();
}

async function waitVisible(page, sel, timeout = STEP_MS) {
	await page.locator(sel).first().waitFor({ state: 'visible', timeout });
}

async function sessionRows(page) {
	return page.locator('#sessions-body tr').evaluateAll((rows) => rows.map((tr) => ({
		key: tr.dataset.key,
		current: tr.classList.contains('current'),
		text: tr.innerText,
		button: tr.querySelector('button.revoke')?.textContent,
	})));
}

async function waitRows(page, n) {
	await page.waitForFunction((k) => document.querySelectorAll('#sessions-body tr').length === k,
		n, { timeout: STEP_MS, polling: 50 }).catch(async () => {
		fail(`expected ${n} session rows, have ${JSON.stringify(await sessionRows(page))}`);
	});
	return sessionRows(page);
}

async function waitIdle(page, sel) {
	await page.waitForFunction((s) => !document.querySelector(s).hasAttribute('aria-busy'),
		sel, { timeout: STEP_MS, polling: 50 });
}

// What scripts on this page can read: document.cookie and both storages.
async function scriptVisibleState(page) {
	return page.evaluate(() => {
		const dump = (st) => {
			const o = {};
			for (let i = 0; i < st.length; i++)
				o[st.key(i)] = st.getItem(st.key(i));
			return o;
		};
		return { cookie: document.cookie, local: dump(localStorage), session: dump(sessionStorage) };
	});
}

// The page as HTML with the text of the new-token display (#token-value)
// taken out, and that text.
async function pageWithoutTokenDisplay(page) {
	return page.evaluate(() => {
		const doc = document.documentElement.cloneNode(true);
		const el = doc.querySelector('#token-value');
		const shown = el ? el.textContent : '';
		if (el)
			el.textContent = '';
		return { html: doc.outerHTML, shown };
	});
}

// No token or secret readable by scripts or in the page. shown: the one
// personal access token the page may show right now (in #token-value and
// nowhere else), or null: then #token-value must be empty.
async function assertNothingReadable(page, secrets, where, shown = null) {
	const st = await scriptVisibleState(page);
	const all = JSON.stringify(st);
	check(!TOKEN_RE.test(all), `${where}: a token is readable by scripts: ${all}`);
	for (const s of secrets)
		check(!all.includes(s), `${where}: a secret is readable by scripts: ${all}`);
	check(Object.keys(st.local).length === 0, `${where}: localStorage is not empty: ${all}`);
	check(Object.keys(st.session).length === 0, `${where}: sessionStorage is not empty: ${all}`);
	const { html, shown: displayed } = await pageWithoutTokenDisplay(page);
	check(!TOKEN_RE.test(html), `${where}: a token is in the page`);
	for (const s of secrets)
		check(!html.includes(s), `${where}: a secret is in the page`);
	if (shown === null)
		check(displayed === '', `${where}: the new-token display is not empty: ${displayed.slice(0, 12)}…`);
	else
		check(displayed === shown, `${where}: the new-token display does not show exactly the new token`);
}

// A script's request with a personal access token, from Node.js (not the browser).
async function bearerMe(token) {
	const r = await fetch(BASE + 'api/me', { headers: { Authorization: 'Bearer ' + token } });
	let body = null;
	try {
		body = await r.json();
	} catch (e) {
		body = null;
	}
	return { status: r.status, body };
}

async function tokenRows(page) {
	return page.locator('#tokens-body tr').evaluateAll((rows) => rows.map((tr) => ({
		key: tr.dataset.key,
		text: tr.innerText,
		name: tr.querySelector('td[data-label="Name"]')?.textContent,
		scopes: tr.querySelector('td[data-label="Scopes"]')?.textContent,
		expires: tr.querySelector('td[data-label="Expires"] time')?.dateTime,
		button: tr.querySelector('button.revoke')?.getAttribute('aria-label'),
	})));
}

async function waitTokenRows(page, n) {
	await page.waitForFunction((k) => document.querySelectorAll('#tokens-body tr').length === k,
		n, { timeout: STEP_MS, polling: 50 }).catch(async () => {
		fail(`expected ${n} token rows, have ${JSON.stringify(await tokenRows(page))}`);
	});
	return tokenRows(page);
}

async function ourCookies(context) {
	return (await context.cookies(BASE + 'api/')).filter((c) => c.name === 'keygate_token');
}

// ---------------------------------------------------------------------------
// the flow

const rand = Math.random().toString(36).slice(2, 10);
const username = `e2e_${rand}`;
const email = `${username}@example.org`;
const pw1 = `first passphrase ${rand} for the browser`;
const pw2 = `second passphrase ${rand} after the change`;
const created = [];             // the personal access tokens POST /tokens answered

let browser;
let exitCode = 0;
try {
	console.log(`flow: ${BASE} with ${CHROMIUM}; screenshots in ${OUT}`);
	browser = await chromium.launch({
		executablePath: CHROMIUM,
		headless: true,
		timeout: 30_000,
		// playwright starts Chromium with a fresh temporary --user-data-dir of
		// its own (and refuses one in args); these keep it off the network.
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
	const ctxOpts = { viewport: { width: 1100, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' };
	const ctxA = await browser.newContext(ctxOpts);
	const a = watch(await ctxA.newPage(), 'A');
	let loginBody = null;
	let tokensBody = null;      // the last 201 of POST /tokens
	a.on('response', async (r) => {
		if (r.url() === BASE + 'api/login' && r.request().method() === 'POST' && r.status() === 200)
			loginBody = await r.text().catch(() => null);
		if (r.url() === BASE + 'api/tokens' && r.request().method() === 'POST' && r.status() === 201)
			tokensBody = await r.text().catch(() => null);
	});

	await step('the page loads logged out, with the login and registration forms', async () => {
		const res = await a.goto(BASE);
		check(res.status() === 200, `GET / answered ${res.status()}`);
		await waitVisible(a, '#login-form');
		await waitVisible(a, '#join-form');
		check(!(await visible(a, '#signed-in')), 'signed-in view is visible before logging in');
		check(await a.title() === 'keygate: log in', `title ${await a.title()}`);
		await shot(a, 'start');
	});

	await step('registering with a too-short password says so in words', async () => {
		await a.fill('#join-form [name=username]', username);
		await a.fill('#join-form [name=email]', email);
		await a.fill('#join-form [name=password]', 'short pw');
		await a.fill('#join-form [name=password2]', 'short pw');
		await a.click('#join-form button[type=submit]');
		await waitText(a, '#join-form .msg.error', /Password is too short/);
		check(await a.getAttribute('#join-form [name=password]', 'aria-invalid') === 'true',
			'password input not marked invalid');
		await shot(a, 'join-too-short');
	});

	await step('registering with mismatched passwords is caught before sending', async () => {
		const before = apiRequests.length;
		await a.fill('#join-form [name=password]', pw1);
		await a.fill('#join-form [name=password2]', pw1 + 'x');
		await a.click('#join-form button[type=submit]');
		await waitText(a, '#join-form .msg.error', /two passwords are not the same/);
		check(apiRequests.length === before, 'a request was sent for mismatched passwords');
	});

	await step('registering works', async () => {
		await a.fill('#join-form [name=password2]', pw1);
		await a.click('#join-form button[type=submit]');
		await waitText(a, '#join-form .msg.ok', new RegExp(`Account “${username}” created`));
		check(await a.inputValue('#login-form [name=username]') === username,
			'login username not filled in after registering');
		await shot(a, 'joined');
	});

	await step('registering the same username again: 409 username_taken in words', async () => {
		await a.fill('#join-form [name=username]', username.toUpperCase());
		await a.fill('#join-form [name=password]', pw1);
		await a.fill('#join-form [name=password2]', pw1);
		await a.click('#join-form button[type=submit]');
		await waitText(a, '#join-form .msg.error', /That username is taken/);
		await a.fill('#join-form [name=username]', '');
		await a.fill('#join-form [name=password]', '');
		await a.fill('#join-form [name=password2]', '');
	});

	await step('a wrong password: 401 "Wrong username or password"', async () => {
		await a.fill('#login-form [name=username]', username);
		await a.fill('#login-form [name=password]', pw1 + ' wrong');
		await a.click('#login-form button[type=submit]');
		await waitText(a, '#login-form .msg.error', /Wrong username or password/);
		check(await a.inputValue('#login-form [name=password]') === '', 'password left in the form');
		check(await ourCookies(ctxA).then((c) => c.length) === 0, 'a cookie after a failed login');
	});

	let cookieA;
	await step('logging in (cookie mode) shows the user', async () => {
		await a.fill('#login-form [name=username]', username);
		await a.fill('#login-form [name=password]', pw1);
		await a.click('#login-form button[type=submit]');
		await waitVisible(a, '#signed-in');
		await waitText(a, '#whoami-name', new RegExp(`^${username}$`));
		await waitText(a, '#me-username', new RegExp(`^${username}$`));
		await waitText(a, '#me-email', new RegExp(`^${email.replace('.', '\\.')}$`));
		await waitText(a, '#me-scopes', /^\*$/);
		await waitText(a, '#page-msg.ok', new RegExp(`Welcome, ${username}`));
		check(!(await visible(a, '#login-form')), 'login form still visible');
		check(await a.title() === `keygate: ${username}`, `title ${await a.title()}`);
		const rows = await waitRows(a, 1);
		check(rows[0].current && /This browser/.test(rows[0].text), `current session not marked: ${JSON.stringify(rows)}`);
		check(rows[0].button === 'Revoke (log out)', `button of the current session: ${rows[0].button}`);
		await shot(a, 'logged-in');
		await a.setViewportSize({ width: 390, height: 844 });       // a phone
		const wide = await a.evaluate(() => document.documentElement.scrollWidth > window.innerWidth
			? [document.documentElement.scrollWidth, ...[...document.querySelectorAll('body *')]
				.filter((e) => e.getBoundingClientRect().right > window.innerWidth)
				.map((e) => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5)]
			: []);
		check(wide.length === 0, `the page is wider than a phone's screen: ${wide}`);
		await shot(a, 'logged-in-phone');
		await a.setViewportSize(ctxOpts.viewport);
	});

	await step('the session cookie is HttpOnly, SameSite=Strict, Path=/api, 12 h; no secret in the login answer', async () => {
		const cs = await ourCookies(ctxA);
		check(cs.length === 1, `cookies: ${JSON.stringify(cs.map((c) => c.name))}`);
		cookieA = cs[0];
		check(TOKEN_RE.test(cookieA.value), 'cookie value is not a token');
		check(cookieA.httpOnly === true, 'cookie is not HttpOnly');
		check(cookieA.sameSite === 'Strict', `cookie SameSite=${cookieA.sameSite}`);
		check(cookieA.path === '/api', `cookie Path=${cookieA.path}`);
		const left = cookieA.expires - Date.now() / 1000;
		check(Math.abs(left - 43200) < 120, `cookie lives ${left} s, not 12 h`);
		check(loginBody !== null, 'login answer not seen');
		const body = JSON.parse(loginBody);
		check(body.success === true && !('secret' in body) && !('token' in body),
			`login answer has a secret or token field: ${Object.keys(body)}`);
		const secret = cookieA.value.split('.')[1];
		check(!loginBody.includes(secret), 'login answer contains the secret');
		check(cookieA.value.startsWith(body.key + '.'), 'cookie is not the token of the key answered');
	});

	await step('no token or secret is readable by scripts (document.cookie, localStorage, sessionStorage)', async () => {
		const secret = cookieA.value.split('.')[1];
		await assertNothingReadable(a, [cookieA.value, secret], 'the page at /');
		// A page under the cookie's own path: only HttpOnly hides it there.
		const probe = watch(await ctxA.newPage(), 'A-probe');
		const res = await probe.goto(BASE + 'api/health');
		check(res.status() === 200, `GET /api/health answered ${res.status()}`);
		const st = await scriptVisibleState(probe);
		check(!st.cookie.includes(secret) && !TOKEN_RE.test(st.cookie),
			`document.cookie under /api/ shows the token: ${st.cookie}`);
		await probe.close();
		pages.delete('A-probe');
	});


	// Personal access tokens (issue 18).
	const fillToken = async (page, { name, scopes = '', expires = '2592000', password }) => {
		await page.fill('#token-form [name=name]', name);
		await page.fill('#token-form [name=scopes]', scopes);
		await page.selectOption('#token-form [name=expires_in]', expires);
		await page.fill('#token-form [name=current_password]', password);
		await page.click('#token-form button[type=submit]');
	};
	const sessionSecret = () => cookieA.value.split('.')[1];

	await step('creating a token: a wrong current password is refused in words, the user stays signed in', async () => {
		await waitVisible(a, '#tokens-empty');
		check((await tokenRows(a)).length === 0, 'token rows before any token was made');
		await fillToken(a, { name: 'ci-deploy', password: pw1 + ' wrong' });
		await waitText(a, '#token-form .msg.error', /Your current password is not correct\. No token was created; you are still logged in\./);
		await waitIdle(a, '#tokens');
		check(await a.getAttribute('#token-form [name=current_password]', 'aria-invalid') === 'true',
			'current password not marked invalid');
		check(await a.inputValue('#token-form [name=current_password]') === '', 'password left in the token form');
		check(await visible(a, '#signed-in') && await visible(a, '#whoami'), 'not signed in after a wrong token password');
		check(!(await visible(a, '#token-new')), 'a new-token display after a refusal');
		check((await ourCookies(ctxA)).length === 1, 'the session cookie is gone after a wrong token password');
		await a.click('#sessions-refresh');
		await waitIdle(a, '#sessions');
		const rows = await waitRows(a, 1);
		check(rows[0].current, `sessions after a wrong token password: ${JSON.stringify(rows)}`);
		check(!(await visible(a, '#sessions .msg.error')), 'the sessions card shows an error');
		await shot(a, 'token-wrong-password');
	});

	await step('creating a token: a missing name is caught before sending, a bad name is a field error', async () => {
		const before = apiRequests.length;
		await fillToken(a, { name: '  ', password: pw1 });
		await waitText(a, '#token-form .msg.error', /Token name is required/);
		check(apiRequests.length === before, 'a request was sent without a name');
		await fillToken(a, { name: 'deploy/prod', password: pw1 });
		await waitText(a, '#token-form .msg.error', /Please correct the following:Token name may only have 1 to 64 letters/);
		await waitIdle(a, '#tokens');
		check(await a.getAttribute('#token-form [name=name]', 'aria-invalid') === 'true', 'name not marked invalid');
		check(await a.getAttribute('#token-form [name=current_password]', 'aria-invalid') === null,
			'current password still marked invalid');
		check(!(await visible(a, '#token-new')), 'a new-token display after a refusal');
	});

	let tokenOne;
	await step('creating a token shows it once, with a copy button and "you will not see it again"', async () => {
		await ctxA.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ORIGIN });
		tokensBody = null;
		await fillToken(a, { name: 'ci-deploy', password: pw1 });
		await waitVisible(a, '#token-new');
		await waitText(a, '#token-new', /You will not see it again/);
		tokenOne = (await a.textContent('#token-value')).trim();
		check(new RegExp('^' + TOKEN_RE.source + '$').test(tokenOne), `the display is not a token: ${tokenOne.slice(0, 12)}…`);
		check(tokensBody !== null, 'POST /tokens answer not seen');
		const body = JSON.parse(tokensBody);
		check(body.success === true && body.kind === 'api' && body.name === 'ci-deploy', `POST /tokens: ${Object.keys(body)}`);
		check(body.token === tokenOne && body.token === body.key + '.' + body.secret,
			'the page does not show the token POST /tokens answered');
		check(JSON.stringify(body.scopes) === '["*"]', `default scopes ${JSON.stringify(body.scopes)}`);
		const left = Date.parse(body.expires_at) - Date.now();
		check(Math.abs(left - 30 * 86400e3) < 300e3, `expires_at ${body.expires_at} is not in 30 days`);
		created.push(tokenOne);
		await waitText(a, '#token-new-name', /^ci-deploy$/);
		check(await a.evaluate(() => document.activeElement?.id) === 'token-new',
			'focus is not on the new token');
		check(await a.inputValue('#token-form [name=current_password]') === '', 'password left in the token form');
		check(await a.inputValue('#token-form [name=name]') === '', 'the form was not reset');
		await assertNothingReadable(a, [cookieA.value, sessionSecret(), tokenOne.split('.')[1]], 'token shown', tokenOne);
		await a.click('#token-copy');
		await waitText(a, '#token-copy-msg', /Copied to the clipboard/);
		const pasted = await a.evaluate(() => navigator.clipboard.readText());
		check(pasted === tokenOne, 'the clipboard does not hold the token');
		const rows = await waitTokenRows(a, 1);
		check(rows[0].key === body.key && rows[0].name === 'ci-deploy' && rows[0].scopes === '*',
			`token row: ${JSON.stringify(rows)}`);
		check(!(await visible(a, '#tokens-empty')), '"no tokens" shown beside a token');
		await waitRows(a, 1);   // the sessions card lists sessions only
		await shot(a, 'token-created');
		await a.setViewportSize({ width: 390, height: 844 });
		const wide = await a.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
		check(!wide, 'the page with a new token is wider than a phone\'s screen');
		await shot(a, 'token-created-phone');
		await a.setViewportSize(ctxOpts.viewport);
	});

	await step('the token works from a script: GET /api/me with Authorization: Bearer, token_kind "api"', async () => {
		const r = await bearerMe(tokenOne);
		check(r.status === 200, `GET /api/me with the token: ${r.status} ${JSON.stringify(r.body)}`);
		check(r.body.token_kind === 'api' && r.body.username === username,
			`GET /api/me with the token: ${JSON.stringify(r.body)}`);
	});

	await step('dismissing the token takes it off the page for good', async () => {
		await a.click('#token-dismiss');
		await waitText(a, '#tokens .msg', /hidden and cannot be shown again/);
		check(!(await visible(a, '#token-new')), 'the token display is still visible');
		await assertNothingReadable(a, [cookieA.value, sessionSecret(), tokenOne.split('.')[1]], 'token dismissed');
	});

	await step('a second token of the same name: 409 name_taken in words', async () => {
		await fillToken(a, { name: 'ci-deploy', password: pw1 });
		await waitText(a, '#token-form .msg.error', /already have a token of that name/);
		await waitIdle(a, '#tokens');
		check(await a.getAttribute('#token-form [name=name]', 'aria-invalid') === 'true', 'name not marked invalid');
		check(!(await visible(a, '#token-new')), 'a new-token display after name_taken');
		check((await tokenRows(a)).length === 1, 'a second token row after name_taken');
	});

	await step('the token is listed; revoking it from the page makes the script\'s request get 401', async () => {
		const key = tokenOne.split('.')[0];
		const rows = await waitTokenRows(a, 1);
		check(rows[0].key === key && rows[0].button === 'Revoke the token “ci-deploy”', `token row: ${JSON.stringify(rows)}`);
		await a.click(`#tokens-body tr[data-key="${key}"] button.revoke`);
		await waitText(a, '#tokens .msg.ok', /Token “ci-deploy” revoked/);
		await waitTokenRows(a, 0);
		await waitVisible(a, '#tokens-empty');
		await waitRows(a, 1);
		check(await visible(a, '#signed-in'), 'revoking a token logged the page out');
		const r = await bearerMe(tokenOne);
		check(r.status === 401, `GET /api/me with the revoked token: ${r.status} ${JSON.stringify(r.body)}`);
		await shot(a, 'token-revoked');
	});

	let tokenTwo;
	await step('a narrower token (files:read, 7 days); leaving the page takes it off the page', async () => {
		await fillToken(a, { name: 'nightly backup', scopes: 'files:read', expires: '604800', password: pw1 });
		await waitVisible(a, '#token-new');
		tokenTwo = (await a.textContent('#token-value')).trim();
		check(TOKEN_RE.test(tokenTwo) && tokenTwo !== tokenOne, 'no new token shown');
		created.push(tokenTwo);
		await waitText(a, '#token-new-scopes', /^files:read$/);
		const rows = await waitTokenRows(a, 1);
		check(rows[0].name === 'nightly backup' && rows[0].scopes === 'files:read', `token row: ${JSON.stringify(rows)}`);
		const left = Date.parse(rows[0].expires) - Date.now();
		check(Math.abs(left - 7 * 86400e3) < 300e3, `expires ${rows[0].expires} is not in 7 days`);
		const r = await bearerMe(tokenTwo);
		check(r.status === 200 && r.body.token_kind === 'api' && JSON.stringify(r.body.scopes) === '["files:read"]',
			`GET /api/me with the files:read token: ${r.status} ${JSON.stringify(r.body)}`);
		await a.goto(BASE + 'favicon.svg');
		await a.goBack();
		await waitVisible(a, '#signed-in');
		await waitTokenRows(a, 1);
		check(!(await visible(a, '#token-new')), 'the new token is shown again after leaving the page');
		await assertNothingReadable(a, [cookieA.value, sessionSecret(), tokenTwo.split('.')[1]], 'back on the page');
	});

	const ctxB = await browser.newContext(ctxOpts);
	const b = watch(await ctxB.newPage(), 'B');
	await step('a second browser logs in as the same user ("remember me": 30 days)', async () => {
		await b.goto(BASE);
		await waitVisible(b, '#login-form');
		await b.fill('#login-form [name=username]', username);
		await b.fill('#login-form [name=password]', pw1);
		await b.check('#login-form [name=remember]');
		await b.click('#login-form button[type=submit]');
		await waitText(b, '#whoami-name', new RegExp(`^${username}$`));
		const rows = await waitRows(b, 2);
		check(rows.filter((r) => r.current).length === 1, `B: current marks: ${JSON.stringify(rows)}`);
		const cs = await ourCookies(ctxB);
		check(cs.length === 1, 'B has no cookie');
		const left = cs[0].expires - Date.now() / 1000;
		check(Math.abs(left - 2592000) < 120, `remembered cookie lives ${left} s, not 30 days`);
		await assertNothingReadable(b, [cs[0].value, cs[0].value.split('.')[1]], 'B');
		await shot(b, 'second-browser');
	});

	await step('the first browser lists both sessions and revokes the second one', async () => {
		await a.click('#sessions-refresh');
		const rows = await waitRows(a, 2);
		const mine = rows.filter((r) => r.current);
		check(mine.length === 1 && cookieA.value.startsWith(mine[0].key + '.'),
			`A: the current mark is not on A's session: ${JSON.stringify(rows)}`);
		const other = rows.find((r) => !r.current);
		check(other.button === 'Revoke', `other session's button: ${other.button}`);
		await shot(a, 'two-sessions');
		await a.click(`#sessions-body tr[data-key="${other.key}"] button.revoke`);
		await waitText(a, '#sessions .msg.ok', /Session revoked/);
		const after = await waitRows(a, 1);
		check(after[0].current && after[0].key === mine[0].key, `A after revoking: ${JSON.stringify(after)}`);
		await shot(a, 'revoked');
	});

	await step('the second browser sees on reload that it is logged out; its dead cookie is cleared', async () => {
		await b.reload();
		await waitVisible(b, '#login-form');
		await waitText(b, '#page-msg', /Your session has ended/);
		check(!(await visible(b, '#signed-in')), 'B still shows the signed-in view');
		await shot(b, 'second-logged-out');
		const deadline = Date.now() + STEP_MS;
		while ((await ourCookies(ctxB)).length > 0) {
			check(Date.now() < deadline, 'B still holds the revoked cookie');
			await new Promise((r) => setTimeout(r, 100));
		}
	});

	await step('the second browser logs in again (a session for the password change to end)', async () => {
		await b.fill('#login-form [name=username]', username);
		await b.fill('#login-form [name=password]', pw1);
		await b.click('#login-form button[type=submit]');
		await waitText(b, '#whoami-name', new RegExp(`^${username}$`));
	});

	await step('changing the password: mismatch caught, wrong current password refused', async () => {
		await a.fill('#password-form [name=current_password]', pw1);
		await a.fill('#password-form [name=new_password]', pw2);
		await a.fill('#password-form [name=new_password2]', pw2 + 'x');
		await a.click('#password-form button[type=submit]');
		await waitText(a, '#password-form .msg.error', /two new passwords are not the same/);
		await a.fill('#password-form [name=current_password]', pw2);
		await a.fill('#password-form [name=new_password2]', pw2);
		await a.click('#password-form button[type=submit]');
		await waitText(a, '#password-form .msg.error', /current password is not correct/);
		await a.fill('#password-form [name=current_password]', pw1);
		await a.fill('#password-form [name=new_password]', username + ' inside');
		await a.fill('#password-form [name=new_password2]', username + ' inside');
		await a.click('#password-form button[type=submit]');
		await waitText(a, '#password-form .msg.error', /New password must not contain your username/);
	});

	await step('changing the password logs the other browser out', async () => {
		await a.fill('#password-form [name=current_password]', pw1);
		await a.fill('#password-form [name=new_password]', pw2);
		await a.fill('#password-form [name=new_password2]', pw2);
		await a.click('#password-form button[type=submit]');
		await waitText(a, '#password-form .msg.ok',
			/Password changed\. 1 other session was logged out\. 1 personal access token was revoked\./);
		await waitIdle(a, '#password-form');
		check(await a.inputValue('#password-form [name=new_password]') === '', 'new password left in the form');
		await waitRows(a, 1);
		await waitTokenRows(a, 0);
		const r = await bearerMe(tokenTwo);
		check(r.status === 401, `GET /api/me with a token the password change revoked: ${r.status}`);
		await shot(a, 'password-changed');
		await b.reload();
		await waitText(b, '#page-msg', /Your session has ended/);
	});

	await step('logging out', async () => {
		await a.click('#logout');
		await waitVisible(a, '#login-form');
		await waitText(a, '#page-msg.ok', /You are logged out/);
		check(!(await visible(a, '#whoami')), 'the header still names the user');
		check((await ourCookies(ctxA)).length === 0, 'the cookie survived the logout');
		await a.reload();
		await waitVisible(a, '#login-form');
		check(!(await visible(a, '#page-msg')), 'a message after reloading a clean logged-out page');
		await shot(a, 'logged-out');
	});

	await step('the old password no longer works, the new one does', async () => {
		await a.fill('#login-form [name=username]', username);
		await a.fill('#login-form [name=password]', pw1);
		await a.click('#login-form button[type=submit]');
		await waitText(a, '#login-form .msg.error', /Wrong username or password/);
		await a.fill('#login-form [name=password]', pw2);
		await a.click('#login-form button[type=submit]');
		await waitText(a, '#whoami-name', new RegExp(`^${username}$`));
		await a.click('#logout-all');
		await waitText(a, '#page-msg.ok', /logged out everywhere \(1 session ended\)/);
		check((await ourCookies(ctxA)).length === 0, 'the cookie survived "log out everywhere"');
	});

	await step('throttled logins: 429 with the wait time from Retry-After', async () => {
		const victim = `e2e_throttle_${rand}`;
		let retryAfter = null;
		const onResp = (r) => {
			if (r.url() === BASE + 'api/login' && r.status() === 429)
				retryAfter = r.headers()['retry-after'];
		};
		a.on('response', onResp);
		for (let i = 0; i < 8 && retryAfter === null; i++) {
			await a.fill('#login-form [name=username]', victim);
			await a.fill('#login-form [name=password]', 'not the password at all');
			await a.click('#login-form button[type=submit]');
			await waitIdle(a, '#login-form');
			await waitVisible(a, '#login-form .msg.error');
		}
		a.off('response', onResp);
		check(retryAfter !== null, 'no 429 after 8 failed logins (login_max_failures must be at most 7)');
		const text = await waitText(a, '#login-form .msg.error', /Too many attempts\. Please wait \d+ (second|minute)s? before trying again/);
		const n = Number(retryAfter);
		const expect = n < 60 ? `${n} second` : `${Math.ceil(n / 60)} minute`;
		check(text.includes(expect), `message "${text}" does not give Retry-After ${retryAfter}`);
		await shot(a, 'throttled');
	});

	// Errors the stack does not produce on demand: answered by the browser
	// from faked responses shaped like keygate's.
	const ctxC = await browser.newContext(ctxOpts);
	const c = watch(await ctxC.newPage(), 'C');
	let fake = null;            // the answer to the next API request
	const fakes = [];           // or, first, these, one a request
	await c.route('**/api/**', async (route) => {
		let f;
		if (fakes.length > 0) {
			f = fakes.shift();
		} else {
			f = fake;
			fake = null;
		}
		if (f === null)
			return route.continue();
		if (f === 'abort')
			return route.abort('connectionrefused');
		const headers = { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...(f.headers || {}) };
		return route.fulfill({ status: f.status, headers, body: JSON.stringify(f.body) });
	});
	const err = (code, message, extra) => ({ success: false, error: code, message, ...(extra || {}) });

	await step('503 at load: "temporarily unavailable, try again in 7 seconds"', async () => {
		fake = { status: 503, headers: { 'Retry-After': '7' }, body: err('unavailable', 'The service is temporarily unavailable.') };
		await c.goto(BASE);
		await waitText(c, '#page-msg.error', /temporarily unavailable\. Try again in 7 seconds\./);
		await waitVisible(c, '#login-form');
		await shot(c, 'unavailable');
	});

	const loginWith = async (f, re) => {
		fake = f;
		await c.fill('#login-form [name=username]', 'someone');
		await c.fill('#login-form [name=password]', 'something long enough');
		await c.click('#login-form button[type=submit]');
		return waitText(c, '#login-form .msg.error', re);
	};

	await step('403 csrf_failed, 413, 415, 429 in minutes, 400 fields, network failure: each in words', async () => {
		await loginWith({ status: 403, body: err('csrf_failed', 'Cross-site request refused.') },
			/refused this request because it did not clearly come from this site/);
		await shot(c, 'csrf-failed');
		await loginWith({ status: 413, body: err('payload_too_large', 'The request body is too large.') },
			/too large for the server/);
		await loginWith({ status: 415, body: err('unsupported_media_type', 'The body must be application/json.') },
			/did not accept the format of the request/);
		await loginWith({ status: 429, headers: { 'Retry-After': '125' }, body: err('too_many_requests', 'Too many attempts; retry later.') },
			/Please wait 3 minutes before trying again/);
		await loginWith({ status: 400, body: err('invalid_request', 'The request is not valid.', { fields: { username: 'invalid', password: 'too_long' } }) },
			/Please correct the following:Username may only have 3 to 64 letters.*Password is too long/);
		await loginWith({ status: 500, body: err('internal', 'Internal error.') }, /Something went wrong on the server/);
		await loginWith({ status: 502, body: '<html>bad gateway</html>' }, /temporarily unavailable/);
		await loginWith('abort', /Cannot reach the server/);
	});

	await step('creating a token: invalid_scope, field errors, session_required, too_many_tokens, 429, each in words', async () => {
		const ok = (o) => ({ status: 200, body: { success: true, ...o } });
		fakes.push(ok({ user_id: 7, username: 'faked', email: null, created_at: '2025-01-31T14:05:09Z',
			scopes: ['files'], granted_scopes: ['files', 'notes'], token_kind: 'session' }));
		const listing = ok({ sessions: [
			{ key: 'kg_1_AAAAAAAAAAAAAAAAAAAAAA', kind: 'session', name: null, created_at: '2025-01-31T14:05:09Z',
				last_used_at: '2025-01-31T15:00:12Z', expires_at: '2025-02-01T02:05:09Z', ip: '127.0.0.1',
				user_agent: 'HeadlessChrome/120', current: true, scopes: ['files'] },
			{ key: 'kg_1_BBBBBBBBBBBBBBBBBBBBBB', kind: 'api', name: 'old job', created_at: '2025-01-30T09:12:44Z',
				last_used_at: null, expires_at: '2025-04-30T09:12:44Z', ip: '127.0.0.1',
				user_agent: 'HeadlessChrome/120', current: false, scopes: ['files:read'] }] });
		fakes.push(listing);
		await c.goto(BASE);
		await waitVisible(c, '#signed-in');
		await waitText(c, '#me-granted', /^files notes$/);
		await waitText(c, '#token-scopes-hint', /all the scopes of this session \(files\)/);
		const rows = await waitTokenRows(c, 1);
		check(rows[0].name === 'old job' && /Never/.test(rows[0].text), `faked token row: ${JSON.stringify(rows)}`);
		await waitRows(c, 1);
		const createWith = async (f, re) => {
			fake = f;
			await fillToken(c, { name: 'job', scopes: 'notes', password: 'something long enough' });
			const text = await waitText(c, '#token-form .msg.error', re);
			await waitIdle(c, '#tokens');
			check(await visible(c, '#signed-in'), `signed out after: ${text}`);
			return text;
		};
		await createWith({ status: 400, body: err('invalid_scope', 'Those scopes are not yours to ask for.', { scopes: ['notes'] }) },
			/cannot have this scope, because this session does not have it: notes\. Nothing was created/);
		check(await c.getAttribute('#token-form [name=scopes]', 'aria-invalid') === 'true', 'scopes not marked invalid');
		await shot(c, 'token-invalid-scope');
		await createWith({ status: 400, body: err('invalid_request', 'The request is not valid.', { fields: { name: 'required', current_password: 'required' } }) },
			/Please correct the following:Token name is required\.Current password is required\./);
		await createWith({ status: 400, body: err('invalid_request', 'The request is not valid.', { fields: { scopes: 'invalid', expires_in: 'too_long' } }) },
			/Scopes are not valid: each is .*Expiry is longer than this server allows/);
		check(await c.getAttribute('#token-form [name=expires_in]', 'aria-invalid') === 'true', 'expiry not marked invalid');
		await createWith({ status: 400, body: err('invalid_request', 'The request is not valid.', { fields: { expires_in: 'invalid' } }) },
			/Expiry is not valid/);
		await createWith({ status: 403, body: err('session_required', 'This needs a session.') },
			/needs a login session: a personal access token cannot do it/);
		await createWith({ status: 409, body: err('too_many_tokens', 'You have the most API tokens allowed.') },
			/as many personal access tokens as this server allows\. Revoke one/);
		await createWith({ status: 429, headers: { 'Retry-After': '40' }, body: err('too_many_requests', 'Too many attempts; retry later.') },
			/Too many attempts\. Please wait 40 seconds before trying again/);
		fakes.push({ status: 404, body: err('not_found', 'No such token.') }, listing);
		await c.click('#tokens-body tr[data-key="kg_1_BBBBBBBBBBBBBBBBBBBBBB"] button.revoke');
		await waitText(c, '#tokens .msg.error', /That token had already been revoked or had expired/);
		await shot(c, 'token-errors');
	});

	await step('every API request was same-origin with X-Requested-With', async () => {
		check(apiRequests.length > 20, `only ${apiRequests.length} API requests seen`);
		for (const r of apiRequests) {
			check(r.url.startsWith(ORIGIN + '/api/'), `request to another origin: ${r.url}`);
			if (r.page === 'A-probe')
				continue;
			check(r.headers['x-requested-with'] === 'fetch', `${r.method} ${r.url} without X-Requested-With`);
		}
	});

	await step('no API answer but POST /tokens\'s carried a token or a secret; each of those carried the token shown', async () => {
		const answers = await Promise.all(apiResponses);
		check(answers.length > 20, `only ${answers.length} API answers seen`);
		const secrets = [cookieA.value.split('.')[1], ...created.map((t) => t.split('.')[1])];
		let minted = 0;
		for (const r of answers) {
			if (r.method === 'POST' && r.url === BASE + 'api/tokens' && r.status === 201 && r.page === 'A') {
				const body = JSON.parse(r.text);
				check(created.includes(body.token), `POST /tokens answered a token the page did not show`);
				minted++;
				continue;
			}
			check(!TOKEN_RE.test(r.text), `${r.method} ${r.url} (${r.status}) answered a token`);
			for (const sec of secrets)
				check(!r.text.includes(sec), `${r.method} ${r.url} (${r.status}) answered a secret`);
		}
		check(minted === created.length && minted === 2, `${minted} tokens minted, ${created.length} shown`);
	});

	await step('nothing in storage at the end; no script errors or CSP violations', async () => {
		const secrets = [cookieA.value.split('.')[1], ...created.map((t) => t.split('.')[1])];
		for (const [name, page] of pages)
			if (!page.isClosed())
				await assertNothingReadable(page, secrets, name);
		check(consoleProblems.length === 0, 'console: ' + consoleProblems.join('\n'));
	});

	console.log(`flow: all ${stepNo} steps passed; screenshots in ${OUT}`);
} catch (e) {
	exitCode = 1;
	console.log(`flow: FAILED; screenshots in ${OUT}`);
} finally {
	if (browser)
		await browser.close().catch(() => {});
}
process.exit(exitCode);
