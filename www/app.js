/*
 * keygate reference web client: plain JavaScript, no build step.
 *
 * The session is an HttpOnly cookie set by POST /login with "cookie": true:
 * no script on this page can read the token, and the page keeps nothing in
 * localStorage or sessionStorage. Every request goes to the API on this
 * origin with credentials 'same-origin' and the header X-Requested-With,
 * which a cross-site form cannot send (keygate's CSRF check also sees the
 * browser's Origin header). Everything the server returns is put on the
 * page with textContent, never as HTML.
 *
 * The one secret a script here does see is a new personal access token
 * (POST /tokens answers it once, for the user to copy into a script or CI
 * job): it goes only into the text of #token-value, is never stored, and is
 * removed from the page when the user dismisses it, logs out or leaves.
 */
'use strict';

(function () {
	const API = (document.querySelector('meta[name="keygate-api"]')?.content || '/api')
		.replace(/\/+$/, '');
	const TIMEOUT_MS = 15000;

	const $ = (sel, root = document) => root.querySelector(sel);

	/* ------------------------------------------------------------------
	 * Talking to the API
	 */

	/*
	 * One API call. Never throws: resolves to
	 *   { ok, status, body (parsed JSON or null), retryAfter (seconds or null),
	 *     tokenPresented (the server saw a token, e.g. a stale cookie),
	 *     failure ('network' | 'timeout' | null) }
	 */
	async function api(method, path, body) {
		const headers = { 'Accept': 'application/json', 'X-Requested-With': 'fetch' };
		const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
		if (body !== undefined) {
			headers['Content-Type'] = 'application/json';
			init.body = JSON.stringify(body);
		}
		const ctl = new AbortController();
		const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
		init.signal = ctl.signal;
		let res;
		try {
			res = await fetch(API + path, init);
		} catch (e) {
			clearTimeout(timer);
			return { ok: false, status: 0, body: null, retryAfter: null, tokenPresented: false,
				failure: ctl.signal.aborted ? 'timeout' : 'network' };
		}
		let parsed = null;
		try {
			if ((res.headers.get('Content-Type') || '').includes('json'))
				parsed = await res.json();
		} catch (e) {
			parsed = null;
		} finally {
			clearTimeout(timer);
		}
		return {
			ok: res.ok && parsed !== null && parsed.success === true,
			status: res.status,
			body: parsed,
			retryAfter: parseRetryAfter(res.headers.get('Retry-After')),
			tokenPresented: /error="invalid_token"/.test(res.headers.get('WWW-Authenticate') || ''),
			failure: null,
		};
	}

	/* Retry-After is seconds or an HTTP date; seconds from now, or null. */
	function parseRetryAfter(v) {
		if (v === null || v === '')
			return null;
		if (/^\d+$/.test(v.trim()))
			return parseInt(v, 10);
		const t = Date.parse(v);
		return Number.isNaN(t) ? null : Math.max(0, Math.ceil((t - Date.now()) / 1000));
	}

	/* ------------------------------------------------------------------
	 * Turning answers into words
	 */

	function plural(n, word) {
		return n + ' ' + word + (n === 1 ? '' : 's');
	}

	/* 45 -> "45 seconds", 125 -> "3 minutes", 3720 -> "1 hour 2 minutes" */
	function formatWait(seconds) {
		const s = Math.max(1, Math.ceil(seconds));
		if (s < 60)
			return plural(s, 'second');
		const m = Math.ceil(s / 60);
		if (m < 60)
			return plural(m, 'minute');
		const h = Math.floor(m / 60), rest = m % 60;
		return plural(h, 'hour') + (rest ? ' ' + plural(rest, 'minute') : '');
	}

	const FIELD_LABELS = {
		username: 'Username',
		password: 'Password',
		email: 'Email',
		current_password: 'Current password',
		new_password: 'New password',
		scopes: 'Scopes',
		name: 'Token name',
		expires_in: 'Expiry',
		key: 'Key',
		secret: 'Secret',
	};

	/* One field problem of a 400 invalid_request in words. */
	function fieldProblem(field, reason) {
		const name = FIELD_LABELS[field] || field;
		switch (reason) {
		case 'required':
			return name + ' is required.';
		case 'wrong_type':
			return name + ' was sent in the wrong form (reload the page and try again).';
		case 'invalid':
			if (field === 'username')
				return 'Username may only have 3 to 64 letters, digits, “_”, “.” or “-”.';
			if (field === 'email')
				return 'Email is not a valid email address.';
			if (field === 'name')
				return 'Token name may only have 1 to 64 letters, digits, spaces, “_”, “.” or “-” (no space at either end).';
			if (field === 'scopes')
				return 'Scopes are not valid: each is “*” or words of letters, digits, “_”, “.” or “-” joined by “:” (e.g. files:read), at most 16 of them.';
			if (field === 'expires_in')
				return 'Expiry is not valid: choose one from the list.';
			return name + ' is not valid.';
		case 'too_long':
			if (field === 'email')
				return 'Email is too long (at most 254 characters).';
			if (field === 'username')
				return 'Username is too long (at most 64 characters).';
			if (field === 'name')
				return 'Token name is too long (at most 64 characters).';
			if (field === 'expires_in')
				return 'Expiry is longer than this server allows for tokens: choose a shorter one.';
			if (field === 'scopes')
				return 'Scopes are too long or too many (at most 16, of up to 64 characters each).';
			return name + ' is too long (at most 128 characters).';
		case 'too_short':
			return name + ' is too short: choose a longer passphrase.';
		case 'too_common':
			return name + ' is one of the most common passwords: choose another one.';
		case 'too_guessable':
			return name + ' would be too easy to guess (a repeat, a sequence, a keyboard ' +
				'pattern, common words or your username): choose a less predictable one.';
		case 'contains_username':
			return name + ' must not contain your username.';
		case 'not_with_password':
			return name + ' cannot be sent together with a password.';
		default:
			return name + ': ' + String(reason).replace(/_/g, ' ') + '.';
		}
	}

	/*
	 * What to tell the user about a failed call: { text, items } where items
	 * are field problems. ctx names the action, for the few codes whose
	 * meaning depends on it.
	 */
	function describe(res, ctx) {
		const b = res.body || {};
		const wait = res.retryAfter !== null ? formatWait(res.retryAfter) : null;
		if (res.failure === 'timeout')
			return { text: 'The server did not answer in time. Check your connection and try again.' };
		if (res.failure === 'network')
			return { text: 'Cannot reach the server. Check your connection and try again.' };
		switch (b.error) {
		case 'invalid_request': {
			const items = Object.entries(b.fields || {}).map(([f, r]) => fieldProblem(f, r));
			return items.length
				? { text: 'Please correct the following:', items }
				: { text: 'The request was not accepted: ' + (b.message || 'it is not valid.') };
		}
		case 'invalid_json':
			return { text: 'The server could not read the request. Reload the page and try again.' };
		case 'invalid_scope': {
			const bad = Array.isArray(b.scopes) ? b.scopes.filter((x) => typeof x === 'string') : [];
			if (ctx === 'token')
				return bad.length
					? { text: 'A token cannot have ' + (bad.length === 1 ? 'this scope' : 'these scopes') +
						', because this session does not have ' + (bad.length === 1 ? 'it' : 'them') +
						': ' + bad.join(' ') + '. Nothing was created.' }
					: { text: 'This session has no scopes to give a token. Nothing was created.' };
			return { text: 'You asked for scopes that are not granted to you' +
				(bad.length ? ': ' + bad.join(' ') : '') + '.' };
		}
		case 'invalid_credentials':
			if (ctx === 'password')
				return { text: 'Your current password is not correct. Nothing was changed.' };
			if (ctx === 'token')
				return { text: 'Your current password is not correct. No token was created; you are still logged in.' };
			return { text: 'Wrong username or password.' };
		case 'invalid_token':
			return { text: 'You are not logged in (your session has ended). Please log in again.' };
		case 'csrf_failed':
			return { text: 'The server refused this request because it did not clearly come from this site (cross-site request protection). Open the page from its own address and try again.' };
		case 'forbidden':
			return { text: 'That is not allowed.' };
		case 'session_required':
			return { text: 'That needs a login session: a personal access token cannot do it. Log in with your password.' };
		case 'not_found':
			if (ctx === 'revoke')
				return { text: 'That session had already ended.' };
			if (ctx === 'revoke-token')
				return { text: 'That token had already been revoked or had expired.' };
			return { text: 'The server does not know this request (is the API at ' + API + '/?).' };
		case 'method_not_allowed':
			return { text: 'The server does not accept this request (method not allowed).' };
		case 'username_taken':
			return { text: 'That username is taken. Choose another one.', items: [] };
		case 'name_taken':
			return { text: 'You already have a token of that name. Choose another name, or revoke the old token first.' };
		case 'too_many_tokens':
			return { text: 'You have as many personal access tokens as this server allows. Revoke one you no longer need, then try again.' };
		case 'email_taken':
			return { text: 'That email address is already registered. Log in instead, or use another address.' };
		case 'payload_too_large':
			return { text: 'What you entered is too large for the server. Shorten it and try again.' };
		case 'unsupported_media_type':
			return { text: 'The server did not accept the format of the request (it must be JSON). Reload the page and try again.' };
		case 'too_many_requests':
			return { text: 'Too many attempts. ' + (wait ? 'Please wait ' + wait + ' before trying again.' : 'Please wait a while before trying again.') };
		case 'unavailable':
			return { text: 'The service is temporarily unavailable. ' + (wait ? 'Try again in ' + wait + '.' : 'Try again shortly.') };
		case 'internal':
			return { text: 'Something went wrong on the server. Try again later.' };
		}
		/* No keygate error body: judge by the status (e.g. a proxy's own page). */
		switch (res.status) {
		case 400: return { text: 'The request was not accepted.' };
		case 401: return describe({ ...res, body: { error: 'invalid_token' } }, ctx);
		case 403: return { text: 'That is not allowed.' };
		case 404: return { text: 'The server does not know this request.' };
		case 413: return describe({ ...res, body: { error: 'payload_too_large' } }, ctx);
		case 415: return describe({ ...res, body: { error: 'unsupported_media_type' } }, ctx);
		case 429: return describe({ ...res, body: { error: 'too_many_requests' } }, ctx);
		case 502:
		case 503:
		case 504: return describe({ ...res, body: { error: 'unavailable' } }, ctx);
		}
		return { text: 'Unexpected answer from the server (HTTP ' + res.status + '). Try again later.' };
	}

	/* Show a message in box (a .msg element): kind is 'error', 'ok' or 'info'. */
	function show(box, kind, text, items) {
		box.replaceChildren();
		box.className = 'msg ' + kind;
		const p = document.createElement('p');
		p.textContent = text;
		box.append(p);
		if (items && items.length) {
			const ul = document.createElement('ul');
			for (const it of items) {
				const li = document.createElement('li');
				li.textContent = it;
				ul.append(li);
			}
			box.append(ul);
		}
		box.hidden = false;
	}

	function clear(box) {
		box.hidden = true;
		box.replaceChildren();
	}

	function clearAllMessages() {
		for (const box of document.querySelectorAll('.msg[role="alert"]'))
			clear(box);
	}

	/* Mark the inputs a 400 names (aria-invalid); clear the others. */
	function markFields(form, res) {
		const fields = (res && res.body && res.body.fields) || {};
		for (const input of form.querySelectorAll('input, select'))
			input.removeAttribute('aria-invalid');
		for (const f of Object.keys(fields)) {
			const input = form.elements.namedItem(f);
			if (input && input.setAttribute)
				input.setAttribute('aria-invalid', 'true');
		}
	}

	function showFailure(box, res, ctx) {
		const d = describe(res, ctx);
		show(box, 'error', d.text, d.items);
	}

	/* ------------------------------------------------------------------
	 * Formatting
	 */

	function when(iso) {
		if (!iso)
			return '—';
		const d = new Date(iso);
		if (Number.isNaN(d.getTime()))
			return iso;
		return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
	}

	function timeEl(iso) {
		const t = document.createElement('time');
		if (iso) {
			t.dateTime = iso;
			t.title = iso;
		}
		t.textContent = when(iso);
		return t;
	}

	/* "Mozilla/5.0 (X11; Linux x86_64) ... Chrome/120.0 Safari/537.36" -> "Chrome 120 on Linux" */
	function deviceName(ua) {
		if (!ua)
			return 'Unknown device';
		const products = ['Edg', 'OPR', 'Firefox', 'HeadlessChrome', 'Chromium', 'Chrome',
			'Version', 'curl', 'python-requests', 'Wget', 'node-fetch', 'okhttp'];
		let name = null;
		for (const p of products) {
			const m = ua.match(new RegExp('(?:^|[\\s(])' + p + '/(\\d+)'));
			if (m) {
				const label = { Edg: 'Edge', OPR: 'Opera', Version: 'Safari' }[p] || p;
				name = label + ' ' + m[1];
				break;
			}
		}
		const systems = [['Windows', 'Windows'], ['Android', 'Android'], ['iPhone', 'iPhone'],
			['iPad', 'iPad'], ['Mac OS X', 'macOS'], ['CrOS', 'ChromeOS'], ['Linux', 'Linux']];
		let os = null;
		for (const [needle, label] of systems) {
			if (ua.includes(needle)) {
				os = label;
				break;
			}
		}
		if (!name)
			name = ua.length > 40 ? ua.slice(0, 40) + '…' : ua;
		return os ? name + ' on ' + os : name;
	}

	/* ------------------------------------------------------------------
	 * The page
	 */

	const view = {
		loading: $('#loading'),
		signedOut: $('#signed-out'),
		signedIn: $('#signed-in'),
		whoami: $('#whoami'),
		pageMsg: $('#page-msg'),
	};
	const loginForm = $('#login-form');
	const joinForm = $('#join-form');
	const passwordForm = $('#password-form');
	const sessionsCard = $('#sessions');
	const tokensCard = $('#tokens');
	const tokenForm = $('#token-form');
	const tokenNew = $('#token-new');
	const msgOf = (el) => $('.msg', el);

	/* Run fn with the buttons of scope disabled (no double submits). */
	async function busy(scope, fn) {
		const buttons = [...scope.querySelectorAll('button')];
		for (const b of buttons)
			b.disabled = true;
		scope.setAttribute('aria-busy', 'true');
		try {
			return await fn();
		} finally {
			for (const b of buttons)
				b.disabled = false;
			scope.removeAttribute('aria-busy');
		}
	}

	function showSignedOut() {
		view.loading.hidden = true;
		view.signedIn.hidden = true;
		view.whoami.hidden = true;
		view.signedOut.hidden = false;
		$('#sessions-body').replaceChildren();
		$('#tokens-body').replaceChildren();
		hideNewToken();
		tokenForm.reset();
		apiTokenCount = 0;
		document.title = 'keygate: log in';
	}

	function showSignedIn(me) {
		view.loading.hidden = true;
		view.signedOut.hidden = true;
		view.signedIn.hidden = false;
		view.whoami.hidden = false;
		$('#whoami-name').textContent = me.username;
		$('#me-username').textContent = me.username;
		$('#me-email').textContent = me.email || '—';
		$('#me-created').replaceChildren(timeEl(me.created_at));
		$('#me-id').textContent = String(me.user_id);
		$('#me-scopes').textContent = (me.scopes || []).join(' ') || '—';
		$('#me-granted').textContent = (me.granted_scopes || []).join(' ') || '—';
		$('#token-scopes-hint').textContent = 'Separated by spaces, e.g. “files:read”. Leave empty for all ' +
			'the scopes of this session (' + ((me.scopes || []).join(' ') || 'none') + ').';
		passwordForm.elements.username.value = me.username;
		tokenForm.elements.username.value = me.username;
		document.title = 'keygate: ' + me.username;
	}

	/*
	 * The session is gone (revoked elsewhere, expired, logged out): back to
	 * the login form. The browser may still hold the dead cookie, which no
	 * script here can delete: POST /logout makes the server expire it.
	 */
	function sessionEnded(text) {
		showSignedOut();
		clearAllMessages();
		if (text)
			show(view.pageMsg, 'info', text);
		api('POST', '/logout');
	}

	const ENDED = 'Your session has ended: it was logged out, revoked from another device, or it expired. Please log in again.';

	/*
	 * Load who is logged in and show the right view. Returns 'in', 'none'
	 * (no session cookie reached the server), 'ended' or 'error'.
	 */
	async function load() {
		const res = await api('GET', '/me');
		if (res.ok) {
			showSignedIn(res.body);
			await loadSessions();
			return 'in';
		}
		if (res.status === 401) {
			if (!res.tokenPresented) {
				showSignedOut();
				return 'none';
			}
			sessionEnded(ENDED);
			return 'ended';
		}
		showSignedOut();
		showFailure(view.pageMsg, res, 'load');
		return 'error';
	}

	/* After a 401 while logged in: the session ended under us. */
	function handleLost(res) {
		if (res.status !== 401)
			return false;
		sessionEnded(ENDED);
		return true;
	}

	function sessionRow(s) {
		const tr = document.createElement('tr');
		if (s.current)
			tr.className = 'current';
		tr.dataset.key = s.key;

		const dev = document.createElement('td');
		const name = document.createElement('span');
		name.className = 'device';
		name.textContent = deviceName(s.user_agent);
		if (s.user_agent)
			name.title = s.user_agent;
		dev.append(name);
		if (s.current) {
			const badge = document.createElement('span');
			badge.className = 'badge';
			badge.textContent = 'This browser';
			dev.append(' ', badge);
		}
		const ip = document.createElement('td');
		ip.textContent = s.ip || '—';
		const created = document.createElement('td');
		created.append(timeEl(s.created_at));
		const used = document.createElement('td');
		used.append(timeEl(s.last_used_at));
		const expires = document.createElement('td');
		expires.append(timeEl(s.expires_at));

		const act = document.createElement('td');
		const btn = document.createElement('button');
		btn.type = 'button';
		btn.className = 'revoke danger';
		btn.textContent = s.current ? 'Revoke (log out)' : 'Revoke';
		btn.setAttribute('aria-label', s.current
			? 'Revoke this browser\'s session and log out'
			: 'Revoke the session of ' + deviceName(s.user_agent) + ' from ' + (s.ip || 'an unknown address'));
		btn.addEventListener('click', () => revoke(s));
		act.append(btn);

		// Labels for the narrow layout, where each row is a little card.
		const labels = ['Device', 'IP address', 'Logged in', 'Last active', 'Expires', ''];
		[dev, ip, created, used, expires, act].forEach((td, i) => {
			if (labels[i])
				td.dataset.label = labels[i];
		});
		tr.append(dev, ip, created, used, expires, act);
		return tr;
	}

	/* A personal access token's row: name, scopes, dates, Revoke. */
	function tokenRow(t) {
		const tr = document.createElement('tr');
		tr.dataset.key = t.key;
		const label = t.name || t.key;

		const name = document.createElement('td');
		const strong = document.createElement('span');
		strong.className = 'device';
		strong.textContent = label;
		name.append(strong);
		const scopes = document.createElement('td');
		scopes.className = 'scopes';
		scopes.textContent = (t.scopes || []).join(' ') || 'none';
		const created = document.createElement('td');
		created.append(timeEl(t.created_at));
		const used = document.createElement('td');
		if (t.last_used_at)
			used.append(timeEl(t.last_used_at));
		else
			used.textContent = 'Never';
		const expires = document.createElement('td');
		expires.append(timeEl(t.expires_at));

		const act = document.createElement('td');
		const btn = document.createElement('button');
		btn.type = 'button';
		btn.className = 'revoke danger';
		btn.textContent = 'Revoke';
		btn.setAttribute('aria-label', 'Revoke the token “' + label + '”');
		btn.addEventListener('click', () => revokeToken(t));
		act.append(btn);

		const labels = ['Name', 'Scopes', 'Created', 'Last used', 'Expires', ''];
		[name, scopes, created, used, expires, act].forEach((td, i) => {
			if (labels[i])
				td.dataset.label = labels[i];
		});
		tr.append(name, scopes, created, used, expires, act);
		return tr;
	}

	let apiTokenCount = 0;      // for the "log out everywhere" message

	/* GET /sessions lists both kinds: sessions in one card, API tokens in the other. */
	async function loadSessions() {
		const box = msgOf(sessionsCard);
		const res = await api('GET', '/sessions');
		if (handleLost(res))
			return;
		if (!res.ok) {
			showFailure(box, res, 'sessions');
			showFailure(msgOf(tokensCard), res, 'sessions');
			return;
		}
		const all = res.body.sessions || [];
		const tokens = all.filter((s) => s.kind === 'api');
		$('#sessions-body').replaceChildren(...all.filter((s) => s.kind !== 'api').map(sessionRow));
		$('#tokens-body').replaceChildren(...tokens.map(tokenRow));
		$('#tokens-empty').hidden = tokens.length > 0;
		tokensCard.querySelector('.table-wrap').hidden = tokens.length === 0;
		apiTokenCount = tokens.length;
	}

	async function revoke(s) {
		const box = msgOf(sessionsCard);
		clear(view.pageMsg);
		await busy(sessionsCard, async () => {
			const res = await api('DELETE', '/sessions/' + encodeURIComponent(s.key));
			if (handleLost(res))
				return;
			if (res.ok && s.current) {
				sessionEnded('You revoked this browser\'s session and are logged out.');
				return;
			}
			if (res.ok)
				show(box, 'ok', 'Session revoked: ' + deviceName(s.user_agent) + ' is logged out.');
			else
				showFailure(box, res, 'revoke');
			await loadSessions();
		});
	}

	async function revokeToken(t) {
		const box = msgOf(tokensCard);
		const label = t.name || t.key;
		clear(view.pageMsg);
		clear(msgOf(tokenForm));
		await busy(tokensCard, async () => {
			const res = await api('DELETE', '/sessions/' + encodeURIComponent(t.key));
			if (handleLost(res))
				return;
			if (res.ok)
				show(box, 'ok', 'Token “' + label + '” revoked: whatever uses it is refused from now on.');
			else
				showFailure(box, res, 'revoke-token');
			await loadSessions();
		});
	}

	/* ------------------------------------------------------------------
	 * The new token, shown once
	 */

	function showNewToken(t) {
		$('#token-value').textContent = t.token;
		$('#token-new-name').textContent = t.name;
		$('#token-new-scopes').textContent = (t.scopes || []).join(' ') || 'none';
		$('#token-new-expires').replaceChildren(timeEl(t.expires_at));
		clear($('#token-copy-msg'));
		tokenNew.hidden = false;
		tokenNew.focus();
	}

	/* Take the token off the page: dismissed, logged out, or leaving the page. */
	function hideNewToken() {
		tokenNew.hidden = true;
		$('#token-value').textContent = '';
		$('#token-new-name').textContent = '';
		$('#token-new-scopes').textContent = '';
		$('#token-new-expires').replaceChildren();
		clear($('#token-copy-msg'));
		const sel = window.getSelection && window.getSelection();
		if (sel && tokenNew.contains(sel.anchorNode))
			sel.removeAllRanges();
	}

	async function copyNewToken() {
		const el = $('#token-value');
		const box = $('#token-copy-msg');
		const text = el.textContent;
		if (!text)
			return;
		try {
			await navigator.clipboard.writeText(text);
			show(box, 'ok', 'Copied to the clipboard. Paste it where it is needed, then hide it here.');
			return;
		} catch (e) {
			/* No clipboard API (or no permission): select it for the user. */
		}
		const range = document.createRange();
		range.selectNodeContents(el);
		const sel = window.getSelection();
		sel.removeAllRanges();
		sel.addRange(range);
		let copied = false;
		try {
			copied = document.execCommand('copy');
		} catch (e) {
			copied = false;
		}
		if (copied)
			show(box, 'ok', 'Copied to the clipboard. Paste it where it is needed, then hide it here.');
		else
			show(box, 'info', 'The browser did not let this page copy it: the token is selected, press Ctrl+C (⌘C on a Mac) to copy it.');
	}

	$('#token-copy').addEventListener('click', copyNewToken);
	$('#token-dismiss').addEventListener('click', () => {
		hideNewToken();
		show(msgOf(tokensCard), 'info', 'The new token is hidden and cannot be shown again.');
		tokenForm.elements.name.focus();
	});
	/* Leaving the page (also into the back/forward cache): no token left behind. */
	window.addEventListener('pagehide', hideNewToken);

	/* ------------------------------------------------------------------
	 * Actions
	 */

	loginForm.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		const f = loginForm.elements;
		const box = msgOf(loginForm);
		clear(view.pageMsg);
		await busy(loginForm, async () => {
			const res = await api('POST', '/login', {
				username: f.username.value.trim(),
				password: f.password.value,
				remember: f.remember.checked,
				cookie: true,
			});
			f.password.value = '';
			markFields(loginForm, res);
			if (!res.ok) {
				showFailure(box, res, 'login');
				f.password.focus();
				return;
			}
			clear(box);
			loginForm.reset();
			const state = await load();
			if (state === 'in')
				show(view.pageMsg, 'ok', 'Welcome, ' + $('#whoami-name').textContent + '. You are logged in.');
			else if (state === 'none')
				show(box, 'error', 'The server logged you in, but this browser did not keep the session cookie. ' +
					'Cookies must be allowed for this site, and a site served over plain HTTP needs keygate\'s cookie_secure = 0.');
		});
	});

	joinForm.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		const f = joinForm.elements;
		const box = msgOf(joinForm);
		clear(view.pageMsg);
		if (f.password.value !== f.password2.value) {
			markFields(joinForm, null);
			f.password2.setAttribute('aria-invalid', 'true');
			show(box, 'error', 'The two passwords are not the same.');
			return;
		}
		await busy(joinForm, async () => {
			const body = { username: f.username.value.trim(), password: f.password.value };
			if (f.email.value.trim() !== '')
				body.email = f.email.value.trim();
			const res = await api('POST', '/join', body);
			markFields(joinForm, res);
			if (!res.ok) {
				if (res.body && res.body.error === 'username_taken')
					f.username.setAttribute('aria-invalid', 'true');
				if (res.body && res.body.error === 'email_taken')
					f.email.setAttribute('aria-invalid', 'true');
				showFailure(box, res, 'join');
				return;
			}
			const name = body.username;
			joinForm.reset();
			show(box, 'ok', 'Account “' + name + '” created. You can log in now.');
			loginForm.elements.username.value = name;
			loginForm.elements.password.focus();
		});
	});

	passwordForm.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		const f = passwordForm.elements;
		const box = msgOf(passwordForm);
		clear(view.pageMsg);
		if (f.new_password.value !== f.new_password2.value) {
			markFields(passwordForm, null);
			f.new_password2.setAttribute('aria-invalid', 'true');
			show(box, 'error', 'The two new passwords are not the same.');
			return;
		}
		await busy(passwordForm, async () => {
			const res = await api('POST', '/password', {
				current_password: f.current_password.value,
				new_password: f.new_password.value,
			});
			markFields(passwordForm, res);
			if (res.status === 401 && res.body && res.body.error === 'invalid_token') {
				handleLost(res);
				return;
			}
			if (!res.ok) {
				if (res.body && res.body.error === 'invalid_credentials')
					f.current_password.setAttribute('aria-invalid', 'true');
				showFailure(box, res, 'password');
				return;
			}
			const username = f.username.value;
			passwordForm.reset();
			f.username.value = username;
			/* keys_removed counts both kinds, api_tokens_removed the API tokens among them. */
			const t = Math.max(0, Number(res.body.api_tokens_removed) || 0);
			const n = Math.max(0, (Number(res.body.keys_removed) || 0) - t);
			show(box, 'ok', 'Password changed. ' + (n > 0
				? plural(n, 'other session') + (n === 1 ? ' was' : ' were') + ' logged out.'
				: 'No other session was logged in.') + (t > 0
				? ' ' + plural(t, 'personal access token') + (t === 1 ? ' was' : ' were') + ' revoked.'
				: ''));
			await loadSessions();
		});
	});

	tokenForm.addEventListener('submit', async (ev) => {
		ev.preventDefault();
		const f = tokenForm.elements;
		const box = msgOf(tokenForm);
		clear(view.pageMsg);
		clear(msgOf(tokensCard));
		if (f.name.value.trim() === '') {
			/* keygate calls an empty name "invalid"; here it is simply missing. */
			markFields(tokenForm, null);
			f.name.setAttribute('aria-invalid', 'true');
			show(box, 'error', 'Please correct the following:', [fieldProblem('name', 'required')]);
			f.name.focus();
			return;
		}
		await busy(tokensCard, async () => {
			const body = { name: f.name.value.trim(), current_password: f.current_password.value };
			const scopes = f.scopes.value.split(/[\s,]+/).filter((x) => x !== '');
			if (scopes.length)
				body.scopes = scopes;
			if (f.expires_in.value !== '')
				body.expires_in = parseInt(f.expires_in.value, 10);
			const res = await api('POST', '/tokens', body);
			f.current_password.value = '';
			markFields(tokenForm, res);
			if (res.status === 401 && res.body && res.body.error === 'invalid_token') {
				handleLost(res);
				return;
			}
			if (!res.ok) {
				const code = res.body && res.body.error;
				if (code === 'invalid_credentials')
					f.current_password.setAttribute('aria-invalid', 'true');
				if (code === 'name_taken')
					f.name.setAttribute('aria-invalid', 'true');
				if (code === 'invalid_scope')
					f.scopes.setAttribute('aria-invalid', 'true');
				showFailure(box, res, 'token');
				const first = tokenForm.querySelector('[aria-invalid="true"]');
				(first || f.current_password).focus();
				return;
			}
			clear(box);
			const username = f.username.value;
			tokenForm.reset();
			f.username.value = username;
			showNewToken(res.body);
			await loadSessions();
		});
	});

	async function logout(all) {
		await busy(document.body, async () => {
			const res = await api('POST', '/logout', all ? { all: true } : undefined);
			if (res.ok || res.status === 401) {
				const kept = apiTokenCount;     // "all" ends sessions only
				showSignedOut();
				clearAllMessages();
				const n = res.ok && all ? res.body.keys_removed : 1;
				show(view.pageMsg, 'ok', all && res.ok
					? 'You are logged out everywhere (' + plural(n, 'session') + ' ended).' + (kept > 0
						? ' Your ' + plural(kept, 'personal access token') + (kept === 1 ? ' still works' : ' still work') +
							': log in to revoke ' + (kept === 1 ? 'it' : 'them') + ' if need be.'
						: '')
					: 'You are logged out.');
				return;
			}
			showFailure(view.pageMsg, res, 'logout');
		});
	}

	$('#logout').addEventListener('click', () => logout(false));
	$('#logout-all').addEventListener('click', () => logout(true));
	$('#sessions-refresh').addEventListener('click', () => {
		clear(view.pageMsg);
		clear(msgOf(sessionsCard));
		return busy(sessionsCard, loadSessions);
	});

	load();
})();
