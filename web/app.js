/* clgwd onboarding page. No framework, no inline script (CSP), data only via textContent. */
'use strict';
(() => {
  const $ = (sel) => document.querySelector(sel);
  const VIEWS = ['gateway', 'cloud', 'pbx', 'connect', 'voice', 'deployment', 'advanced', 'overview'];
  const PAGE_NAMES = { gateway: 'Gateway', cloud: 'Cloud', pbx: 'PBX', connect: 'Connect',
    voice: 'Voice Gateway', deployment: 'Deployment', advanced: 'Advanced', overview: 'Overview' };
  let csrf = null;
  let pbxTypes = [];

  function el(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') node.textContent = v; else node.setAttribute(k, v);
    }
    for (const kid of kids) node.append(kid);
    return node;
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (csrf && method !== 'GET') headers['X-CSRF-Token'] = csrf;
    let resp;
    try {
      resp = await fetch(path, { method, headers, credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      return { ok: false, status: 0, data: { code: 'offline', message: String(e),
        title: 'The gateway did not answer.',
        next: 'Check that the gateway is on and that this computer is on its network, then reload the page.' } };
    }
    let data = null;
    try { data = await resp.json(); } catch (e) { data = {}; }
    if (resp.status === 401 && !path.startsWith('/api/v1/session')) showLogin();
    if (resp.ok && method !== 'GET' && !path.startsWith('/api/v1/session')) stepsSoon();
    return { ok: resp.ok, status: resp.status, data };
  }

  /* Any change the gateway accepted may move the onboarding on: refresh the stepper
     once the burst of calls is over (refreshSteps is defined with the stepper). */
  let stepsTimer = null;
  function stepsSoon() {
    clearTimeout(stepsTimer);
    stepsTimer = setTimeout(() => refreshSteps(), 300);
  }

  const isNA = (r) => r.status === 501 || (r.data && r.data.code === 'not_supported_yet');

  function notAvailable(box, r) {
    box.replaceChildren(el('strong', { text: 'Not available yet' }),
      el('span', { text: (r.data && r.data.message) || 'This gateway version cannot do this yet.' }));
    box.hidden = false;
    box.classList.add('na');
  }

  /* Successes only: a failure never appears in the (green) status line. */
  function say(text) { $('#toast').textContent = text; }
  /* A success to show on the step the page moves on to. */
  let pendingToast = '';
  function moveOn(view, text) { pendingToast = text; location.hash = '#' + view; }

  /* What each error code means to the technician (GET /api/v1/messages). */
  let HUMAN = {};
  async function loadMessages() {
    const r = await api('GET', '/api/v1/messages');
    if (r.ok) HUMAN = r.data.messages || {};
  }

  /* One problem: what happened and what to check, the technical detail behind "Details". */
  function problemNodes(code, detail, title, next) {
    const h = HUMAN[code] || HUMAN.internal_error || {};
    const nodes = [el('strong', { text: title || h.title || 'Something went wrong.' })];
    const what = next || h.next;
    if (what) nodes.push(el('span', { class: 'next', text: what }));
    nodes.push(el('details', {}, el('summary', { text: 'Details' }),
      el('code', { text: code || 'error' }), el('span', { text: ' ' + (detail || '') })));
    return nodes;
  }

  function problemBox(code, detail) {
    return el('div', { class: 'err', role: 'alert' }, ...problemNodes(code, detail));
  }

  function showError(id, r) {
    const box = $(id);
    say('');
    if (isNA(r)) { box.textContent = 'Not available yet: ' + r.data.message; return; }
    const d = r.data || {};
    box.replaceChildren(...problemNodes(d.code, d.message || ('HTTP ' + r.status), d.title, d.next));
  }

  /* A control that cannot work here: read-only, with the line that says why. */
  function readOnly(form, note, on) {
    for (const c of form.querySelectorAll('input, select, button, textarea')) c.disabled = on;
    note.hidden = !on;
  }

  function formData(form) {
    const out = {};
    for (const input of form.querySelectorAll('input[name], select[name]')) {
      if (input.type === 'radio' && !input.checked) continue;
      if (input.type === 'checkbox') continue;
      out[input.name] = input.value.trim();
    }
    return out;
  }

  /* ---------- client-side validation ---------- */
  const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
  const ipNum = (s) => s.split('.').reduce((a, b) => (a * 256) + Number(b), 0);
  function maskOk(m) {
    if (!IPV4.test(m)) return false;
    const bits = ipNum(m).toString(2).padStart(32, '0');
    return /^1*0*$/.test(bits);
  }

  function markInvalid(form, errors) {
    for (const input of form.querySelectorAll('input, select')) input.removeAttribute('aria-invalid');
    const first = errors[0];
    for (const [input] of errors) input.setAttribute('aria-invalid', 'true');
    if (first) first[0].focus();
    return errors.map(([input, msg]) => {
      const label = form.querySelector(`label[for="${input.id}"]`);
      return (label ? label.textContent.replace(/\s*\*.*$/, '') : input.name) + ': ' + msg;
    }).join('; ');
  }

  function checkRequired(form) {
    const errors = [];
    for (const input of form.querySelectorAll('input[required], select[required]')) {
      if (input.closest('[hidden]')) continue;
      if (!input.value.trim()) errors.push([input, 'required']);
      else if (!input.checkValidity()) errors.push([input, input.validationMessage || 'invalid']);
    }
    return errors;
  }

  /* ---------- session ---------- */
  function showOnly(id) {
    for (const sec of document.querySelectorAll('main > section')) sec.hidden = sec.id !== id;
  }

  function showLogin() {
    csrf = null;
    $('#nav').hidden = true; $('#logout').hidden = true;
    showOnly('view-login');
    $('#login-pw').focus();
  }

  async function boot() {
    await loadMessages();
    const r = await api('GET', '/api/v1/session');
    if (!r.ok) { showOnly('view-loading'); showError('#page-err', r); return; }
    if (r.data.setup_required) {
      showOnly('view-setup'); $('#setup-code').focus();
      if (r.data.locked_for) lockCountdown('#setup-form', '#setup-wait', r.data.locked_for);
      return;
    }
    if (!r.data.authenticated) {
      showLogin();
      if (r.data.locked_for) lockCountdown('#login-form', '#login-wait', r.data.locked_for);
      return;
    }
    csrf = r.data.csrf_token;
    enterApp();
  }

  function enterApp() {
    $('#nav').hidden = false; $('#logout').hidden = false;
    route();
  }

  $('#setup-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const errors = checkRequired(form);
    if (!errors.length && $('#setup-pw').value !== $('#setup-pw2').value) {
      errors.push([$('#setup-pw2'), 'the passwords differ']);
    }
    $('#setup-form-err').textContent = markInvalid(form, errors);
    if (errors.length) return;
    const r = await api('POST', '/api/v1/session/setup',
      { setup_code: $('#setup-code').value.trim(), password: $('#setup-pw').value });
    if (!r.ok) {
      showError('#setup-form-err', r);
      if (r.data && r.data.retry_after) lockCountdown('#setup-form', '#setup-wait', r.data.retry_after);
      return;
    }
    csrf = r.data.csrf_token;
    $('#setup-done').hidden = false;  /* the confirmation, on the first step */
    location.hash = '#gateway';
    enterApp();
  });

  /* ---------- lockout countdown (docs/api.md "Setup code") ---------- */
  let lockTimer = null;
  function lockCountdown(formSel, waitSel, seconds) {
    clearInterval(lockTimer);
    const button = $(formSel + ' button[type=submit]');
    const wait = $(waitSel);
    const until = Date.now() + seconds * 1000;
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      if (left > 0) {
        button.disabled = true;
        wait.textContent = `Too many failed attempts. You can try again in ${left} s.`;
        return;
      }
      clearInterval(lockTimer);
      lockTimer = null;
      button.disabled = false;
      wait.textContent = '';
      $(formSel + '-err').replaceChildren();
      say('You can try again now.');
    };
    tick();
    lockTimer = setInterval(tick, 250);
  }

  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await api('POST', '/api/v1/session/login', { password: $('#login-pw').value });
    if (!r.ok) {
      showError('#login-form-err', r);
      if (r.data && r.data.retry_after) lockCountdown('#login-form', '#login-wait', r.data.retry_after);
      return;
    }
    $('#login-form-err').textContent = '';
    say('');
    $('#login-pw').value = '';
    csrf = r.data.csrf_token;
    enterApp();
  });

  $('#logout').addEventListener('click', async () => {
    await api('POST', '/api/v1/session/logout');
    showLogin();
  });

  /* ---------- routing ---------- */
  function route(ev) {
    if (!csrf) return;
    if (ev) { say(pendingToast); pendingToast = ''; }
    $('#page-err').replaceChildren();
    const confirm = location.hash.match(/^#confirm=([A-Za-z0-9_\-.]+)$/);
    if (confirm) { confirmNetwork(confirm[1]); return; }
    let name = location.hash.replace('#', '');
    if (!VIEWS.includes(name)) name = 'overview';
    showOnly('view-' + name);
    for (const a of document.querySelectorAll('nav a')) {
      if (a.getAttribute('href') === '#' + name) a.setAttribute('aria-current', 'step');
      else a.removeAttribute('aria-current');
    }
    if (name !== 'gateway') $('#setup-done').hidden = true;
    refreshSteps();
    document.title = name[0].toUpperCase() + name.slice(1) + ' – CloudLink Gateway';
    $('#main').focus();  /* keyboard and screen reader users start at the new content */
    LOADERS[name]();
    watchSync();
  }
  window.addEventListener('hashchange', route);

  /* ---------- stepper ---------- */
  /* Each step's state, derived by the gateway (GET /api/v1/overview "steps"): in words
     and a symbol, never by colour alone; the step shown has aria-current="step". */
  const STEP_WORDS = { done: ['✓', 'done'], next: ['→', 'next'], attention: ['!', 'needs attention'],
    todo: ['', 'to do'], optional: ['', 'optional'] };
  async function refreshSteps() {
    const r = await api('GET', '/api/v1/overview');
    if (!r.ok || !r.data.steps) return;
    for (const li of document.querySelectorAll('nav li[data-step]')) {
      const state = r.data.steps[li.dataset.step] || 'todo';
      const [symbol, words] = STEP_WORDS[state] || STEP_WORDS.todo;
      li.dataset.state = state;
      li.querySelector('.state').replaceChildren(
        el('span', { class: 'sym', 'aria-hidden': 'true', text: symbol }),
        el('span', { class: 'words', text: ' (' + words + ')' }));
    }
  }

  /* ---------- gateway ---------- */
  async function loadGateway() {
    const r = await api('GET', '/api/v1/site');
    if (r.ok && r.data.site) {
      for (const [k, v] of Object.entries(r.data.site)) { const i = $('#' + k); if (i) i.value = v; }
    }
    const n = await api('GET', '/api/v1/network');
    if (isNA(n)) notAvailable($('#network-na'), n);
    else if (n.ok && n.data.ports && n.data.ports[0]) fillPort(n.data.ports[0]);
    readOnly($('#net-form'), $('#net-ro'), n.ok && !(n.data.ports || []).length);
    toggleStatic();
  }

  function fillPort(p) {
    $('#port-name').textContent = p.name;
    for (const r of document.querySelectorAll('input[name=mode]')) r.checked = r.value === p.mode;
    /* A DHCP port shows its current lease (read-only, never sent back as settings). */
    const shown = p.mode === 'dhcp' ? (p.lease || {}) : p;
    $('#ip').value = shown.address || ''; $('#mask').value = shown.netmask || '';
    $('#gw').value = shown.gateway || ''; $('#dns').value = (shown.dns || []).join(', ');
  }

  $('#site-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const msg = markInvalid(form, checkRequired(form));
    $('#site-form-err').textContent = msg;
    if (msg) return;
    const r = await api('PUT', '/api/v1/site', formData(form));
    if (!r.ok) { showError('#site-form-err', r); return; }
    say('Successfully updated site');
  });

  function toggleStatic() {
    const isStatic = document.querySelector('input[name=mode]:checked').value === 'static';
    $('#static-fields').hidden = !isStatic;
  }
  for (const r of document.querySelectorAll('input[name=mode]')) r.addEventListener('change', toggleStatic);

  function portFromForm() {
    const mode = document.querySelector('input[name=mode]:checked').value;
    const port = { name: $('#port-name').textContent, mode };
    const errors = [];
    if (mode === 'static') {
      const ip = $('#ip').value.trim(), mask = $('#mask').value.trim(), gw = $('#gw').value.trim();
      const dns = $('#dns').value.split(',').map((s) => s.trim()).filter(Boolean);
      if (!IPV4.test(ip)) errors.push([$('#ip'), 'enter an IPv4 address such as 192.168.1.10']);
      if (!maskOk(mask)) errors.push([$('#mask'), 'enter a subnet mask such as 255.255.255.0']);
      if (gw && !IPV4.test(gw)) errors.push([$('#gw'), 'enter an IPv4 address']);
      else if (gw && !errors.length && ((ipNum(gw) ^ ipNum(ip)) & ipNum(mask)) !== 0) {
        errors.push([$('#gw'), 'the default gateway is not in the subnet']);
      }
      if (!dns.length || dns.some((d) => !IPV4.test(d))) errors.push([$('#dns'), 'enter 1-3 IPv4 addresses']);
      Object.assign(port, { address: ip, netmask: mask, dns });
      if (gw) port.gateway = gw;
    }
    return { port, errors };
  }

  $('#net-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const { port, errors } = portFromForm();
    const msg = markInvalid(ev.target, errors);
    $('#net-form-err').textContent = msg;
    if (msg) return;
    const r = await api('POST', '/api/v1/network/apply', { ports: [port] });
    if (!r.ok) { showError('#net-form-err', r); return; }
    const box = $('#net-confirm');
    const addr = (r.data.new_addresses || [])[0];
    const host = addr && addr.includes(':') ? `[${addr}]` : addr;
    const url = addr ? `https://${host}/#confirm=${encodeURIComponent(r.data.confirm_token)}` : null;
    box.replaceChildren(el('p', { text: `The new settings are active. Within ${r.data.rollback_after_s} s, open the page at its new address and log in to confirm; otherwise the gateway rolls back.` }));
    if (url) box.append(el('p', {}, el('a', { href: url, text: url })));
    box.hidden = false;
  });

  async function confirmNetwork(token) {
    showOnly('view-gateway');
    const r = await api('POST', '/api/v1/network/confirm', { token });
    history.replaceState(null, '', '#gateway');
    if (r.ok) say('Network settings confirmed.'); else showError('#net-form-err', r);
    loadGateway();
  }

  /* ---------- pre-flight ---------- */
  /* The network part reports configured checks only; the others are listed as skipped. */
  /* Why a check did not run: where its target would come from. */
  const PREFLIGHT_CHECKS = [
    ['dns', 'No host name to resolve: the cloud address is an IP address and the time servers too (or set network.preflight.dns_name).'],
    ['ntp', 'This system names no time servers (chrony, systemd-timesyncd or ntpd), and network.preflight.ntp_servers is empty.'],
    ['cloud', 'No cloud address yet: type it on the Cloud step.'],
    ['stun', 'No STUN server is configured (network.preflight.stun_host).'],
    ['sip-tls', 'No cloud address yet (type it on the Cloud step), and no network.preflight.sip_tls_host.'],
    ['pbx', 'No network PBX is set on the PBX step (a file-based directory has no address to check).'],
    ['proxy', 'No proxy is in use (Cloud step, cloud.proxy or HTTPS_PROXY).']];

  function renderPreflight(report) {
    const checks = report.checks || [];
    const body = el('tbody');
    for (const c of checks) {
      body.append(el('tr', { class: c.ok ? 'pass' : 'fail' }, el('th', { scope: 'row', text: c.name }),
        el('td', { text: c.target }), el('td', {}, el('strong', { text: c.ok ? 'PASS' : 'FAIL' })),
        el('td', { text: (c.seconds * 1000).toFixed(1) + ' ms' }), el('td', { text: c.detail })));
    }
    const ran = new Set(checks.map((c) => c.name));
    for (const [name, why] of PREFLIGHT_CHECKS) {
      if (ran.has(name) || (name === 'cloud' && ran.has('proxy'))) continue;
      body.append(el('tr', { class: 'skipped' }, el('th', { scope: 'row', text: name }),
        el('td', { text: '—' }), el('td', {}, el('strong', { text: 'SKIPPED' })), el('td', { text: '—' }),
        el('td', { text: why })));
    }
    const head = el('tr', {}, ...['Check', 'Target', 'Result', 'Time', 'Reason']
      .map((h) => el('th', { scope: 'col', text: h })));
    const passed = checks.filter((c) => c.ok).length;
    const summary = checks.length
      ? `${passed} of ${checks.length} checks passed` + (report.ok ? '.' : '; see the failed checks below.')
      : 'Nothing to check yet: set the cloud URL, the PBX or a proxy first.';
    $('#pf-result').replaceChildren(el('p', { id: 'pf-summary', text: summary }),
      el('div', { class: 'scroll' }, el('table', { id: 'pf-table' },
        el('caption', { class: 'sr', text: 'Pre-flight check results' }), el('thead', {}, head), body)));
  }

  $('#pf-run').addEventListener('click', async () => {
    const button = $('#pf-run');
    const box = $('#pf-result');
    $('#pf-err').textContent = '';
    button.disabled = true;
    box.replaceChildren(el('p', { text: 'Running the pre-flight checks…' }));
    try {
      const r = await api('POST', '/api/v1/network/preflight', {});
      if (isNA(r)) { box.replaceChildren(); notAvailable(box, r); return; }
      box.classList.remove('na');
      if (!r.ok) { box.replaceChildren(); showError('#pf-err', r); return; }
      renderPreflight(r.data);
    } finally {
      button.disabled = false;
    }
  });

  /* ---------- cloud ---------- */
  function describeLink(box, r) {
    if (isNA(r)) { notAvailable(box, r); return; }
    if (!r.ok) { box.textContent = r.data.message || 'Unknown'; return; }
    const d = r.data;
    box.classList.remove('na');
    box.replaceChildren(
      el('p', { text: 'Link: ' + (d.link || 'unknown') + (d.message ? ' – ' + d.message : '') }),
      el('p', { text: 'Account ID: ' + (d.account_id || 'not enrolled') }));
  }

  async function loadCloud() {
    const r = await api('GET', '/api/v1/cloud');
    describeLink($('#cloud-state'), r);
    if (r.ok) showCloudAddress(r.data);
    showEnroll(!(r.ok && r.data.enrolled));
    loadProxy();
  }

  /* The address in force fills the enrollment form (the technician types one only when
     the gateway has none, or to move it); a saved CA is kept unless another is pasted. */
  const ADDRESS_SOURCES = { page: 'saved on this gateway', file: 'from the configuration file' };
  function showCloudAddress(d) {
    const input = $('#cloud_url');
    if (document.activeElement !== input) input.value = d.cloud_url || '';
    $('#cloud_ca-saved').hidden = !d.cloud_ca_saved;
    const where = ADDRESS_SOURCES[d.cloud_url_source];
    const box = $('#cloud-state');
    if (box.classList.contains('na')) return;
    box.append(el('p', { text: 'Cloud address: ' + (d.cloud_url
      ? d.cloud_url + (where ? ' (' + where + ')' : '')
      : 'not set yet – type it in the form below') }));
  }

  /* Once enrolled, the Enroll form hides; enrolling again is behind a confirmation. */
  function showEnroll(on) {
    $('#enroll-form').hidden = !on;
    $('#enrolled').hidden = on;
  }
  $('#reenroll').addEventListener('click', () => {
    if (!window.confirm('Enroll this gateway again? It gets a new identity from the cloud; '
      + 'the current one stops working when the new enrollment succeeds.')) return;
    showEnroll(true);
    $('#account_id').focus();
  });

  const PROXY_SOURCES = { page: 'set on this page', config: 'from the configuration file',
    environment: 'from HTTPS_PROXY' };
  async function loadProxy() {
    const r = await api('GET', '/api/v1/cloud/proxy');
    const form = $('#proxy-form');
    form.hidden = !r.ok;
    if (!r.ok) return;
    const d = r.data;
    const eff = d.effective;
    $('#proxy-state').textContent = d.problem ? 'Proxy problem: ' + d.problem
      : eff ? `In use: ${eff.proxy} (${PROXY_SOURCES[eff.source] || eff.source}).`
        : 'In use: none, the gateway connects to the cloud directly.';
    $('#proxy_mode').value = d.mode;
    $('#proxy_host').value = d.host || '';
    $('#proxy_port').value = d.port || 3128;
    $('#proxy_user').value = d.username || '';
    $('#proxy_pw').value = '';
    $('#proxy_pw').placeholder = d.password_set ? 'stored (leave empty to keep)' : '';
    $('#proxy_no').value = (d.no_proxy || []).join(', ');
    $('#proxy-manual').hidden = d.mode !== 'manual';
  }

  $('#proxy_mode').addEventListener('change', () => {
    $('#proxy-manual').hidden = $('#proxy_mode').value !== 'manual';
  });

  $('#proxy-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const msg = markInvalid(form, checkRequired(form));
    $('#proxy-form-err').textContent = msg;
    if (msg) return;
    const d = formData(form);
    const body = { mode: d.mode };
    if (d.mode === 'manual') {
      Object.assign(body, { host: d.host, port: Number(d.port), username: d.username || null,
        no_proxy: d.no_proxy.split(',').map((x) => x.trim()).filter(Boolean) });
      if (d.password) body.password = d.password;
    }
    const r = await api('PUT', '/api/v1/cloud/proxy', body);
    if (!r.ok) { showError('#proxy-form-err', r); return; }
    say('Proxy saved; the link uses it from its next connection.');
    loadProxy();
  });

  $('#enroll-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const msg = markInvalid(form, checkRequired(form));
    $('#enroll-form-err').textContent = msg;
    if (msg) return;
    const body = formData(form);
    const ca = $('#cloud_ca_pem').value.trim();
    if (ca) body.cloud_ca_pem = ca;
    const r = await api('POST', '/api/v1/cloud/enroll', body);
    $('#enroll_token').value = '';
    if (!r.ok) { markEnrollField(r); showError('#enroll-form-err', r); return; }
    say('Enrolled.');
    $('#cloud_ca_pem').value = '';
    loadCloud();
  });

  /* The field a refused address or CA came from, marked like a client-side error. */
  function markEnrollField(r) {
    const code = (r.data || {}).code;
    const field = code === 'invalid_cloud_url' || code === 'cloud_unreachable' ? $('#cloud_url')
      : code === 'invalid_cloud_ca' || code === 'cloud_untrusted' ? $('#cloud_ca_pem') : null;
    $('#cloud_ca_pem').removeAttribute('aria-invalid');
    if (!field) return;
    if (field.id === 'cloud_ca_pem') $('#cloud-ca').open = true;
    field.setAttribute('aria-invalid', 'true');
  }

  /* ---------- PBX ---------- */
  async function loadPbx() {
    if (!pbxTypes.length) {
      const t = await api('GET', '/api/v1/pbx/types');
      pbxTypes = t.ok ? t.data.types : [];
      const sel = $('#pbx_type');
      sel.replaceChildren(el('option', { value: '', text: 'Select a PBX type' }));
      for (const type of pbxTypes) {
        const o = el('option', { value: type.id, text: type.label + (type.available ? '' : ' (not available yet)') });
        if (!type.available) o.disabled = true;
        sel.append(o);
      }
    }
    const r = await api('GET', '/api/v1/pbx');
    if (isNA(r)) notAvailable($('#pbx-na'), r);
    else if (r.ok && r.data.configured) {
      const d = r.data;
      $('#pbx_type').value = d.type; $('#pbx_name').value = d.name || '';
      $('#pbx_address').value = d.address || ''; $('#pbx_port').value = d.port || '';
      $('#pbx_user').value = d.username || '';
      $('#pbx_pw').placeholder = d.password_set ? 'set' : '';
      renderOptions(d.options || {});
    }
  }

  const pbxKind = () => pbxTypes.find((t) => t.id === $('#pbx_type').value);

  function renderOptions(values) {
    const type = pbxKind();
    const box = $('#pbx-options');
    box.replaceChildren();
    /* A file on the gateway (CSV, LDIF) has no address, port or credentials. */
    $('#pbx-net').hidden = Boolean(type) && !type.network;
    if (!type) return;
    if (type.network && !$('#pbx_port').value) $('#pbx_port').value = type.default_port;
    for (const f of type.fields) {
      let input;
      if (f.choices) {
        input = el('select', { id: 'opt-' + f.name, 'data-option': f.name });
        for (const c of f.choices) input.append(el('option', { value: c.value, text: c.label }));
      } else {
        input = el('input', { id: 'opt-' + f.name, 'data-option': f.name, maxlength: '500' });
      }
      if (f.required) input.required = true;
      if (values[f.name]) input.value = values[f.name];
      box.append(el('div', { class: 'field' },
        el('label', { for: input.id, text: f.label + (f.required ? ' *' : '') }), input));
    }
  }
  $('#pbx_type').addEventListener('change', () => { $('#pbx_port').value = ''; renderOptions({}); });

  $('#pbx-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    const errors = checkRequired(form);
    const network = !$('#pbx-net').hidden;
    const port = Number($('#pbx_port').value);
    if (network && $('#pbx_port').value && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
      errors.push([$('#pbx_port'), 'must be 1-65535']);
    }
    const msg = markInvalid(form, errors);
    $('#pbx-form-err').textContent = msg;
    if (msg) return;
    const body = { type: $('#pbx_type').value, name: $('#pbx_name').value.trim(), options: {} };
    if (network) {
      Object.assign(body, { address: $('#pbx_address').value.trim(), port,
        username: $('#pbx_user').value.trim() });
      if ($('#pbx_pw').value) body.password = $('#pbx_pw').value;
    }
    for (const i of form.querySelectorAll('[data-option]')) if (i.value.trim()) body.options[i.dataset.option] = i.value.trim();
    const r = await api('PUT', '/api/v1/pbx', body);
    $('#pbx_pw').value = '';
    if (!r.ok) { showError('#pbx-form-err', r); return; }
    $('#pbx-form-err').textContent = '';
    $('#pbx_pw').placeholder = r.data.password_set ? 'set' : '';
    moveOn('connect', 'Successfully created PBX Link. Next: connect to the PBX.');
  });

  /* ---------- connect and sync ---------- */
  /* Lists from the sync part are capped (200); the counts are exact. */
  function userList(title, users, total) {
    const list = el('ul');
    for (const u of users || []) {
      list.append(el('li', { text: (u.extension ? u.extension + ' ' : '') + (u.name || u.source_key) + (u.email ? ' <' + u.email + '>' : '') }));
    }
    if (total > (users || []).length) list.append(el('li', { text: `… and ${total - users.length} more` }));
    return el('details', {}, el('summary', { text: `${title} (${total})` }), list);
  }

  function irregularityBlock(ir) {
    const noEmail = ir.no_email_count || 0, dup = ir.duplicate_email_count || 0;
    const parts = [];
    if (noEmail || dup) {
      parts.push(el('div', { class: 'card problem' },
        el('h3', { text: 'There are irregularities with email addresses on the PBX' }),
        el('p', { text: `${noEmail} users don't have an email address and ${dup} users do not have unique email addresses. They may have issues in the registration process.` }),
        el('p', { class: 'email-policy', text: ir.email_policy === 'hold_back'
          ? 'They are held back: not synced until their email is fixed on the PBX.'
          : 'They are synced and flagged, so the cloud can show why they cannot register by email.' }),
        userList('View list of users without email addresses', ir.no_email, noEmail),
        userList('View list of users that do not have a unique email address', ir.duplicate_email, dup)));
    }
    const cap = (t) => t.charAt(0).toUpperCase() + t.slice(1);
    if (ir.duplicate_extension_count) parts.push(el('p', { text: cap(ir.duplicate_extensions_text || `${ir.duplicate_extension_count} extensions are used by more than one user`) + '.' }));
    if (ir.row_problem_count) parts.push(el('p', { text: `${ir.row_problem_count} ${ir.row_problem_count === 1 ? 'row' : 'rows'} could not be read.` }));
    if (ir.invalid_client_usernames) parts.push(el('p', { text: cap(ir.invalid_client_usernames_text) + '.' }));
    return parts;
  }

  /* Test the PBX; true when it answered (the result, irregularities included, is shown). */
  async function testPbx() {
    const box = $('#test-result');
    box.replaceChildren(el('p', { text: 'Connecting…' }));
    const r = await api('POST', '/api/v1/pbx/test');
    if (isNA(r)) { notAvailable(box, r); return null; }
    box.classList.remove('na');
    if (!r.ok) { box.replaceChildren(problemBox(r.data.code, r.data.message)); return null; }
    const d = r.data;
    const irregular = irregularityBlock(d.irregularities || {});
    box.replaceChildren(el('h3', { text: 'PBX Connected' }), el('p', { text: 'Connection successful' }),
      el('p', { text: 'Number of users: ' + d.users }), el('p', { text: 'DDI (DID) numbers: ' + d.dids }),
      el('p', { text: 'Users that will sync: ' + (d.eligible ?? d.users) }), ...emailPolicyLine(d.email_policy), ...irregular);
    return { irregular: irregular.length > 0 };
  }

  /* Which policy applies to users with email problems (sync.email_problems), and why. */
  function emailPolicyLine(entry) {
    if (!entry) return [];
    const what = entry.value === 'hold_back' ? 'held back (not synced)' : 'synced and flagged';
    const from = entry.source === 'default' ? 'the default' : 'set in the ' + entry.source;
    return [el('p', { id: 'email-policy', text: `Users with email problems: ${what} (sync.email_problems, ${from}).` })];
  }

  /* The vendor's Connect: test, then the first sync; the schedule runs by itself after
     it. A clean result moves on to Deployment; with irregularities the page stays so
     the technician can read them. */
  $('#pbx-test').addEventListener('click', async () => {
    const button = $('#pbx-test');
    button.disabled = true;
    try {
      const tested = await testPbx();
      if (!tested) return;
      const d = await runSync();
      if (d && d.result === 'ok' && !tested.irregular) {
        moveOn('deployment', `Connected: the first sync is complete; the gateway now syncs every ${$('#interval').value} minutes by itself.`);
      }
    } finally {
      button.disabled = false;
    }
  });

  async function loadConnect() {
    const r = await api('GET', '/api/v1/sync/schedule');
    const box = $('#sync-state');
    if (isNA(r)) { notAvailable(box, r); return; }
    box.classList.remove('na');
    if (r.ok) {
      $('#interval').value = r.data.interval_minutes;
      box.replaceChildren(el('p', { text: 'Last sync: ' + describeSync(r.data.last_sync) }),
        el('p', { text: 'Next sync: ' + (r.data.awaiting_sync_now ? 'after Connect (the PBX test and the first sync)' : when(r.data.next_sync_at)) }));
      showAbort(r.data.safety_abort);
      if (r.data.running) pollSync().then((done) => { if (done) loadConnect(); });
      /* After a reload the last failure's reason is shown once, in the result box. */
      const last = r.data.last_sync;
      const result = $('#sync-result');
      if (last && !last.ok && !result.hasChildNodes()) {
        result.replaceChildren(problemBox(last.error_code || 'failed', last.message));
      }
    }
  }

  const when = (t) => (t ? new Date(t * 1000).toLocaleString() : '—');
  /* A failure's reason is shown once, in the problem box below (not in this line too). */
  const describeSync = (s) => (s ? `${when(s.at)} (${s.ok ? 'OK' : s.result || 'failed'})` : 'never');

  $('#sync-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = Number($('#interval').value);
    const errors = Number.isInteger(v) && v >= 5 && v <= 1440 ? [] : [[$('#interval'), 'enter 5-1440 minutes']];
    const msg = markInvalid(ev.target, errors);
    $('#sync-form-err').textContent = msg;
    if (msg) return;
    const r = await api('PUT', '/api/v1/sync/schedule', { interval_minutes: v });
    if (!r.ok) { showError('#sync-form-err', r); return; }
    say('Sync schedule saved.');
  });

  const counted = (c) => `${c.created || 0} created, ${c.updated || 0} updated, ${c.deleted || 0} deleted, ${c.unchanged || 0} unchanged`;

  $('#sync-now').addEventListener('click', () => runSync());

  async function runSync() {
    return showSyncResult(await whileSyncing(() => api('POST', '/api/v1/sync/now')));
  }

  /* ---------- sync progress: phase, counts, elapsed time, a bar ---------- */
  const PHASES = { reading: 'Reading the users from the PBX', comparing: 'Comparing with the last sync',
    saving: 'Saving the changes', sending: 'Sending to the cloud' };
  let pollToken = 0;

  function showProgress(p) {
    const box = $('#sync-progress');
    const bar = $('#sync-bar');
    box.hidden = !p;
    $('#ov-sync-now').hidden = !p;
    for (const b of ['#sync-now', '#abort-keep', '#abort-delete-form button']) $(b).disabled = !!p;
    if (!p) return;
    const c = p.counts || {};
    const facts = [];
    if (c.read !== undefined) facts.push(`${c.read} users read`);
    const amount = countedFact(p);
    if (amount) facts.push(amount);
    facts.push(`${Math.round(p.elapsed || 0)} s`);
    $('#sync-phase').textContent = `${PHASES[p.phase] || p.phase}… (${facts.join(', ')})`;
    if (p.determinate) { bar.max = p.total; bar.value = p.done; } else bar.removeAttribute('value');
    $('#ov-sync-now').textContent = 'Syncing now: ' + $('#sync-phase').textContent;
  }

  /* "1,200 of 20,000 users", "1.2 of 5.0 MB", or what arrived so far without a total
     (an LDAP directory does not say how big it is): sync.status progress.unit. */
  const num = (n) => Number(n).toLocaleString('en-US');
  function countedFact(p) {
    const mb = (n) => (n / 1048576).toFixed(1);
    if (p.determinate) {
      return p.unit === 'bytes' ? `${mb(p.done)} of ${mb(p.total)} MB read`
        : `${num(p.done)} of ${num(p.total)} ${p.unit || ''}${p.phase === 'saving' ? ' saved' : ''}`;
    }
    return p.done && p.unit && p.unit !== 'bytes' ? `${num(p.done)} ${p.unit} so far` : '';
  }

  /* Poll GET /sync/status while a run is going; resolves with the status once it ended
     (null when another caller took over the polling). */
  async function pollSync() {
    const mine = ++pollToken;
    for (;;) {
      const r = await api('GET', '/api/v1/sync/status');
      if (mine !== pollToken) return null;
      if (!r.ok) { showProgress(null); return null; }
      if (!r.data.running) { showProgress(null); return r.data; }
      showProgress(r.data.progress);
      await new Promise((done) => { setTimeout(done, 700); });
      if (mine !== pollToken) return null;
      /* A hidden tab stops polling; the watcher picks the run up again when it shows. */
      if (document.visibilityState === 'hidden') { showProgress(null); return null; }
    }
  }

  /* Run ``request`` (a sync) with the progress shown meanwhile. */
  async function whileSyncing(request) {
    $('#sync-result').replaceChildren();
    showProgress({ phase: 'reading', elapsed: 0, counts: {} });
    const pending = request();
    pollSync();
    try { return await pending; } finally { pollToken += 1; showProgress(null); }
  }

  /* ---------- a sync this page did not start (the schedule, the cloud, the CLI) ----------
     While Connect or Overview is shown and the tab is visible, GET /sync/status every
     few seconds; a run under way is followed like the page's own (0.7 s, Sync Now
     disabled), and a run that ended meanwhile refreshes the view. */
  const WATCH_IDLE_MS = 3000;
  let watchTimer = null;
  let watchedRun;  /* the last run id the watcher saw (undefined: none seen yet) */

  const syncView = () => ['connect', 'overview'].find((v) => !$('#view-' + v).hidden);

  function reloadSyncView() {
    const view = syncView();
    if (view === 'connect') loadConnect(); else if (view === 'overview') loadOverview();
  }

  async function watchSync() {
    clearTimeout(watchTimer);
    watchTimer = null;
    if (!csrf || document.visibilityState === 'hidden' || !syncView()) { watchedRun = undefined; return; }
    if ($('#sync-progress').hidden) {  /* nobody follows a run yet */
      const r = await api('GET', '/api/v1/sync/status');
      if (r.ok) {
        const run = r.data.last_sync ? r.data.last_sync.run_id : null;
        if (watchedRun !== undefined && run !== watchedRun && !r.data.running) reloadSyncView();
        watchedRun = run;
        if (r.data.running && $('#sync-progress').hidden) {
          showProgress(r.data.progress);
          pollSync().then((done) => { if (done) { watchedRun = done.last_sync ? done.last_sync.run_id : null; reloadSyncView(); } });
        }
      }
    }
    if (!watchTimer && syncView()) watchTimer = setTimeout(watchSync, WATCH_IDLE_MS);
  }
  document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') watchSync(); });

  function showSyncResult(r) {
    const box = $('#sync-result');
    if (!r.ok) { box.replaceChildren(); showError('#sync-form-err', r); return null; }
    $('#sync-form-err').textContent = '';
    const d = r.data;
    if (d.result === 'ok') {
      say('Sync complete.');
      box.replaceChildren(el('p', { text: `Sync complete: ${counted(d.counts || {})}; ${(d.counts || {}).eligible || 0} users synced.` }));
    } else if (d.result) {
      say('');
      box.replaceChildren(problemBox(d.error_code || 'failed', d.error || 'sync ' + d.result));
    } else {
      say('Sync started.');
      box.replaceChildren();
    }
    loadConnect();
    return d;
  }

  /* ---------- the safety abort's way out: keep the missing users, or delete them once ---------- */
  /* A list shown page by page (GET ...?offset=&limit=). The page asked for is
     remembered at once, so two quick clicks on "Next" move two pages (reading it back
     from the list's last answer moved one); it stays within the count last seen; only
     the answer to the newest request is shown (an older one that arrives late is
     dropped). ``fresh`` forgets the count: a new list. */
  function pager(size, fetchPage, render) {
    const p = { offset: 0, count: null, seq: 0 };
    p.go = async (offset, fresh = false) => {
      if (fresh) p.count = null;
      const lastStart = p.count === null ? Infinity : Math.max(0, Math.floor((p.count - 1) / size) * size);
      p.offset = Math.max(0, Math.min(offset, lastStart));
      const seq = ++p.seq;
      const asked = p.offset;
      const r = await fetchPage(asked);
      if (seq !== p.seq) return;
      if (r.ok && typeof r.data.count === 'number') p.count = r.data.count;
      render(r, asked);
    };
    p.next = () => p.go(p.offset + size);
    p.prev = () => p.go(p.offset - size);
    return p;
  }

  const ABORT_PAGE = 20;
  let held = null;

  function showAbort(h) {
    const changed = !h || !held || h.set_id !== held.set_id;
    held = h || null;
    $('#sync-abort').hidden = !held;
    if (!held || !changed) return;
    $('#abort-reason').textContent = `${held.count} of ${held.active} synced users are missing from the PBX, so the sync stopped and changed nothing. Every sync stops the same way until you decide.`;
    $('#abort-confirm').value = '';
    $('#abort-err').textContent = '';
    abortPager.go(0, true);
  }

  const abortPager = pager(ABORT_PAGE,
    (offset) => api('GET', `/api/v1/sync/missing?offset=${offset}&limit=${ABORT_PAGE}`),
    (r, offset) => {
      if (!r.ok) { showError('#abort-err', r); return; }
      const d = r.data;
      if (!d.pending) { showAbort(null); return; }
      if (held && d.set_id !== held.set_id) { showAbort(d); return; }
      $('#abort-list').replaceChildren(...d.users.map((u) => el('li', { text: (u.extension ? u.extension + ' ' : '') + (u.name || u.source_key) + (u.email ? ' <' + u.email + '>' : '') })));
      const last = offset + d.users.length;
      $('#abort-page').textContent = `Users ${d.users.length ? offset + 1 : 0}-${last} of ${d.count}`;
      $('#abort-prev').disabled = offset === 0;
      $('#abort-next').disabled = last >= d.count;
    });

  $('#abort-prev').addEventListener('click', () => abortPager.prev());
  $('#abort-next').addEventListener('click', () => abortPager.next());

  /* A refusal (the list changed, the wrong number): shown once, then the list reloads. */
  function abortRefused(r) {
    showError('#abort-err', r);
    if (r.data && r.data.code === 'sync_missing_changed') {
      api('GET', '/api/v1/sync/schedule').then((s) => { if (s.ok) { held = null; showAbort(s.data.safety_abort); showError('#abort-err', r); } });
    }
  }

  $('#abort-keep').addEventListener('click', async () => {
    if (!held) return;
    const r = await api('POST', '/api/v1/sync/missing/keep', { set_id: held.set_id });
    if (!r.ok) { abortRefused(r); return; }
    showAbort(null);
    say(`Kept ${r.data.kept} users in the cloud; nothing was deleted. The next sync runs now with the PBX as it is.`);
    showProgress({ phase: 'reading', elapsed: 0, counts: {} });
    await new Promise((done) => { setTimeout(done, 300); });
    await pollSync();
    loadConnect();
  });

  $('#abort-delete-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!held) return;
    const input = $('#abort-confirm');
    const n = Number(input.value);
    const ok = input.value.trim() !== '' && Number.isInteger(n) && n === held.count;
    const msg = markInvalid(ev.target, ok ? [] : [[input, `type ${held.count}, the number of users listed`]]);
    $('#abort-err').textContent = msg;
    if (msg) return;
    const r = await whileSyncing(() => api('POST', '/api/v1/sync/missing/delete', { set_id: held.set_id, confirm: n }));
    if (!r.ok) { abortRefused(r); return; }
    showAbort(null);
    showSyncResult(r);
    if (r.data.result === 'ok') say(`Deleted ${r.data.counts.deleted} users once, as confirmed. Sync complete.`);
  });

  const OPS = { create: 'Create', update: 'Update', delete: 'Delete' };
  function describeChange(ch) {
    const u = ch.user || {};
    const name = u.display_name || [u.first_name, u.last_name].filter(Boolean).join(' ') || ch.source_key;
    const changed = ch.op === 'update' && (ch.changed || []).length ? ': ' + ch.changed.join(', ') : '';
    return `${OPS[ch.op] || ch.op} ${name}${u.extension ? ' (' + u.extension + ')' : ''}${changed}`;
  }

  $('#preview-btn').addEventListener('click', async () => {
    const box = $('#preview');
    const r = await api('GET', '/api/v1/sync/preview');
    if (isNA(r)) { notAvailable(box, r); return; }
    box.classList.remove('na');
    if (!r.ok) { box.textContent = r.data.message; return; }
    const d = r.data;
    if (d.result === 'failed') { box.replaceChildren(el('p', { class: 'err', text: 'Preview failed: ' + d.error })); return; }
    const c = d.counts || {};
    if (d.error_code === 'sync_safety_abort') {
      /* The same abort the next sync would hit: the preview never says otherwise. */
      box.replaceChildren(el('div', { class: 'err', role: 'alert' }, ...problemNodes('sync_safety_abort', d.error)),
        el('p', { text: `The next sync will stop: ${c.missing || 0} synced users are missing from the PBX. Keep them or delete them once (above) to go on.` }),
        ...irregularityBlock(d.irregularities || {}));
      return;
    }
    const changes = d.changes || [];
    const total = (c.created || 0) + (c.updated || 0) + (c.deleted || 0);
    const list = el('ul');
    for (const ch of changes) list.append(el('li', { text: describeChange(ch) }));
    const parts = [el('p', { text: `Next sync: ${c.created || 0} to create, ${c.updated || 0} to update, ${c.deleted || 0} to delete, ${c.unchanged || 0} unchanged.` }), list];
    if (total > changes.length) parts.push(el('p', { text: `Showing the first ${changes.length} of ${total} changes.` }));
    if (c.absent_pending_delete) parts.push(el('p', { text: `${c.absent_pending_delete} users are missing from the PBX and will be deleted if they stay missing.` }));
    box.replaceChildren(...parts, ...irregularityBlock(d.irregularities || {}));
  });

  /* ---------- deployment ---------- */
  async function loadDeployment() {
    const r = await api('GET', '/api/v1/deployment');
    const box = $('#deployment');
    if (!r.ok) { box.textContent = r.data.message; return; }
    const d = r.data;
    const parts = [];
    if (!d.cloud.available) parts.push(el('div', { class: 'na' }, el('strong', { text: 'Cloud: not available yet' }), el('span', { text: d.cloud.message })));
    if (!d.inventory.available) parts.push(el('div', { class: 'na' }, el('strong', { text: 'Inventory: not available yet' }), el('span', { text: d.inventory.message })));
    parts.push(el('p', { text: "Here's the customer's account ID which can be used during login: " + (d.account_id || '—') }),
      el('p', { text: 'Synced users: ' + (d.synced_users ?? '—') }),
      el('p', { text: d.ready ? 'Deployment emails can now be sent from the cloud portal.' : 'Not ready to deploy yet.' }));
    box.replaceChildren(...parts);
  }

  /* ---------- advanced ---------- */
  function showUpdateState(d) {
    const next = d.next_window;
    $('#update-next').textContent = next
      ? 'Next update window: ' + next.local.replace('T', ' ') + ' (' + d.timezone + ')'
      : 'No automatic updates scheduled.';
    const last = d.last_update;
    $('#update-last').textContent = d.update_running ? 'An update is running now.'
      : last ? 'Last update: ' + (last.ok ? 'succeeded' : 'failed' + (last.message || last.error ? ' (' + (last.message || last.error) + ')' : ' (exit code ' + last.exit_code + ')'))
        + ' at ' + new Date(last.finished_at * 1000).toLocaleString() : '';
  }

  /* updates: version, last update/check, next check, pause (docs/updates.md) */
  function showUpdateStatus(d) {
    $('#update-version').textContent = 'Current version: ' + d.current_version;
    const u = d.last_update;
    $('#update-last-update').textContent = 'Last update: ' + (u ? when(u.finished_at) + ', '
      + (u.ok ? 'succeeded' : 'failed') + (u.message || u.error ? ' (' + (u.message || u.error) + ')' : '') : 'never');
    const c = d.last_check;
    $('#update-last-check').textContent = 'Last check: ' + (!c ? 'never' : when(c.at) + ', '
      + (!c.ok ? 'failed (' + c.error + ')' : c.available ? 'release ' + c.offered.version + ' available' : (c.note || 'up to date')));
    $('#update-next-check').textContent = 'Next check: ' + (d.paused ? 'paused'
      : d.next_check ? d.next_check.local.replace('T', ' ') : 'not scheduled');
    $('#update-pause').textContent = d.paused ? 'Resume automatic updates' : 'Pause automatic updates';
    $('#update-pause').dataset.paused = d.paused ? '1' : '';
  }
  async function loadUpdateStatus() {
    const r = await api('GET', '/api/v1/update/status');
    if (r.ok) showUpdateStatus(r.data); else $('#update-info').hidden = true;
  }
  $('#update-pause').addEventListener('click', async () => {
    const paused = $('#update-pause').dataset.paused === '1';
    const r = await api('POST', '/api/v1/update/' + (paused ? 'resume' : 'pause'), {});
    if (!r.ok) { showError('#update-form-err', r); return; }
    showUpdateStatus(r.data);
    say(paused ? 'Automatic updates resumed.' : 'Automatic updates paused.');
  });
  /* /updates */

  async function loadAdvanced() {
    loadTrace();
    loadUpdateStatus();
    loadMonitoring();
    const r = await api('GET', '/api/v1/update/schedule');
    if (isNA(r)) { notAvailable($('#update-na'), r); return; }
    if (!r.ok) { showError('#update-form-err', r); return; }
    readOnly($('#update-form'), $('#update-ro'), r.data.managed === false);
    if (r.data.frequency) {
      $('#frequency').value = r.data.frequency; $('#utime').value = r.data.time; $('#utz').value = r.data.timezone;
      for (const c of document.querySelectorAll('input[name=weekdays]')) c.checked = (r.data.weekdays || []).includes(c.value);
    }
    showUpdateState(r.data);
  }

  $('#update-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const weekdays = [...document.querySelectorAll('input[name=weekdays]:checked')].map((c) => c.value);
    const errors = checkRequired(ev.target);
    if ($('#frequency').value === 'weekly' && !weekdays.length) errors.push([document.querySelector('input[name=weekdays]'), 'choose at least one weekday']);
    const msg = markInvalid(ev.target, errors);
    $('#update-form-err').textContent = msg;
    if (msg) return;
    const r = await api('PUT', '/api/v1/update/schedule', { frequency: $('#frequency').value, weekdays,
      time: $('#utime').value, timezone: $('#utz').value.trim() });
    if (!r.ok) { showError('#update-form-err', r); return; }
    showUpdateState(r.data);
    loadUpdateStatus();
    say('Update schedule saved.');
  });

  /* Each error goes to its field (aria-invalid + the field's described-by text) and the
     summary to the form's alert; the server names the field in "field: message". */
  const PW_FIELDS = { current_password: '#pw-current', new_password: '#pw-new' };
  function pwErrors(errors, summary) {
    for (const id of ['#pw-current', '#pw-new', '#pw-new2']) {
      $(id).removeAttribute('aria-invalid'); $(id + '-err').textContent = '';
    }
    for (const [input, msg] of errors) {
      input.setAttribute('aria-invalid', 'true'); $('#' + input.id + '-err').textContent = msg;
    }
    if (errors.length) errors[0][0].focus();
    $('#pw-form-err').textContent = summary;
  }

  $('#pw-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const errors = checkRequired(ev.target);
    if (!errors.length && $('#pw-new').value !== $('#pw-new2').value) {
      errors.push([$('#pw-new2'), 'the new passwords differ']);
    }
    pwErrors(errors, markInvalid(ev.target, errors));
    if (errors.length) return;
    const r = await api('POST', '/api/v1/session/password',
      { current_password: $('#pw-current').value, new_password: $('#pw-new').value });
    if (!r.ok) {
      const m = /^(current_password|new_password): (.*)$/.exec((r.data && r.data.message) || '');
      pwErrors(m ? [[$(PW_FIELDS[m[1]]), m[2]]] : [], '');
      showError('#pw-form-err', r);
      /* The same lockout as the login: count it down with Change password disabled. */
      if (r.data && r.data.retry_after) lockCountdown('#pw-form', '#pw-wait', r.data.retry_after);
      return;
    }
    csrf = r.data.csrf_token;  /* the server rotated the session */
    ev.target.reset();
    say('Password changed. Other browsers are logged out.');
  });

  /* ---------- monitoring (Advanced): SNMP agent, MQTT, inventory; docs/monitoring.md ---------- */
  /* Secrets are write-only: the API answers "set" or null, an empty field keeps the one set. */
  let snmpUsers = [];
  let snmpTraps = [];
  let invPlatforms = [];
  const monSettings = { monitor: [], inventory: [], notes: {} };
  const csv = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
  const orNull = (s) => (s.trim() ? s.trim() : null);

  function renderMonSources() {
    const entries = [...monSettings.monitor, ...monSettings.inventory];
    const notes = [...(monSettings.notes.monitor || []), ...(monSettings.notes.inventory || [])];
    $('#mon-sources').replaceChildren(
      ...entries.map((e) => el('li', { text: `${e.key}: ${JSON.stringify(e.value)} (${e.source}${e.set_by ? ', set by ' + e.set_by : ''})` })),
      ...notes.map((n) => el('li', { class: 'note', text: 'Note: ' + n })));
  }

  function removable(list, label, render) {
    return (item, i) => el('li', {}, label(item) + ' ',
      (() => {
        const b = el('button', { type: 'button', 'aria-label': 'Remove ' + item.name, text: 'Remove' });
        b.addEventListener('click', () => { list.splice(i, 1); render(); });
        return b;
      })());
  }

  function renderSnmpUsers() {
    $('#snmp-users').replaceChildren(...snmpUsers.map(removable(snmpUsers,
      (u) => `${u.name} (${u.auth_protocol.toUpperCase()}, ${u.priv_protocol.toUpperCase()}; keys ${u.auth_key ? 'set' : 'not set'})`,
      renderSnmpUsers)));
  }

  function renderSnmp(d) {
    $('#snmp-listen').value = d.listen.join(', ');
    $('#snmp-community').value = '';
    $('#snmp-community-off').checked = false;
    $('#snmp-community-state').textContent = 'Community: ' + (d.community ? 'set' : 'not set (v2c off)');
    snmpUsers = d.users.map((u) => ({ ...u }));
    renderSnmpUsers();
    for (const id of ['#snmp-user', '#snmp-auth-key', '#snmp-priv-key', '#snmp-trap-community']) $(id).value = '';
    snmpTraps = d.traps;
    $('#snmp-traps').value = d.traps.map((t) => t.address).join(', ');
    $('#snmp-location').value = d.location; $('#snmp-contact').value = d.contact;
    $('#snmp-state').textContent = d.bound.length
      ? `Agent answering on ${d.bound.join(', ')}; ${d.auth_failures} refused request(s) so far.` : 'Agent off.';
  }

  function renderMqtt(d) {
    $('#mqtt-url').value = d.url || ''; $('#mqtt-username').value = d.username;
    $('#mqtt-password').value = ''; $('#mqtt-password-off').checked = false;
    $('#mqtt-password-state').textContent = 'Password: ' + (d.password ? 'set' : 'not set');
    $('#mqtt-ca').value = d.ca_file || '';
    $('#mqtt-prefix').value = d.topic_prefix || ''; $('#mqtt-prefix').placeholder = d.effective_topic_prefix;
    $('#mqtt-state').textContent = d.url ? `Broker connection: ${d.state}${d.message ? ' (' + d.message + ')' : ''}; status topic ${d.effective_topic_prefix}/status.` : 'MQTT off.';
  }

  function renderPlatforms() {
    $('#inv-platforms').replaceChildren(...invPlatforms.map(removable(invPlatforms,
      (p) => `${p.name} at ${p.address} (${p.user ? 'SNMPv3 user ' + p.user.name : 'community ' + (p.community ? 'set' : 'not set')})`,
      renderPlatforms)));
  }

  function renderInventory(d) {
    $('#inv-interval').value = Math.max(1, Math.round(d.interval / 60));
    invPlatforms = d.platforms.map((p) => ({ ...p }));
    renderPlatforms();
    for (const id of ['#inv-name', '#inv-address', '#inv-community']) $(id).value = '';
  }

  /* "Use the config file's ... settings" shows while a key of the section was saved. */
  const savedIn = (settings, prefix) => settings.some((e) => e.key.startsWith(prefix) && ['page', 'cloud'].includes(e.source));

  function showMonitor(d) {
    renderSnmp(d.snmp); renderMqtt(d.mqtt);
    monSettings.monitor = d.settings; monSettings.notes.monitor = d.notes;
    $('#snmp-forget').hidden = !savedIn(d.settings, 'monitor.snmp.');
    $('#mqtt-forget').hidden = !savedIn(d.settings, 'monitor.mqtt.');
    renderMonSources();
  }

  function showInventory(d) {
    renderInventory(d);
    monSettings.inventory = d.settings; monSettings.notes.inventory = d.notes;
    $('#inv-forget').hidden = !savedIn(d.settings, 'inventory.');
    renderMonSources();
  }

  for (const [id, section, errBox] of [['#snmp-forget', 'snmp', '#snmp-form-err'],
    ['#mqtt-forget', 'mqtt', '#mqtt-form-err'], ['#inv-forget', 'inventory', '#inv-form-err']]) {
    $(id).addEventListener('click', async () => {
      const r = await api('POST', '/api/v1/monitoring/forget', { sections: [section] });
      if (!r.ok) { showError(errBox, r); return; }
      $(errBox).textContent = '';
      showMonitoring(r.data);
      $(id.replace('-forget', '-save')).focus();  /* the pressed button is hidden now */
      say("The config file's settings apply again.");
    });
  }

  async function loadMonitoring() {
    const r = await api('GET', '/api/v1/monitoring');
    if (r.ok) showMonitoring(r.data); else showError('#snmp-form-err', r);
  }

  function showMonitoring({ monitor, inventory }) {
    if (!monitor.available) notAvailable($('#mon-na'), { status: 501, data: monitor });
    else if (monitor.error) showError('#snmp-form-err', { status: 500, data: monitor.error });
    else showMonitor(monitor.data);
    if (inventory.available && inventory.data) showInventory(inventory.data);
    else if (inventory.error) showError('#inv-form-err', { status: 500, data: inventory.error });
  }

  /* The server names the key ("monitor.snmp.listen[0]: ..."): mark that field. */
  function monFieldError(form, fields, r) {
    const m = /^[a-z.]*?\.?([a-z_]+)(\[\d+\])?(\.[a-z_]+)?: /.exec((r.data && r.data.message) || '');
    const key = m && m[3] && fields[m[3].slice(1)] ? m[3].slice(1) : m && m[1];
    const input = key && fields[key] ? $(fields[key]) : null;
    markInvalid(form, input ? [[input, '']] : []);
  }

  $('#snmp-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const users = snmpUsers.map((u) => ({ name: u.name, auth_protocol: u.auth_protocol,
      priv_protocol: u.priv_protocol, auth_key: null, priv_key: null }));
    const name = $('#snmp-user').value.trim();
    if (name) {
      const edited = { name, auth_protocol: $('#snmp-auth-proto').value, priv_protocol: $('#snmp-priv-proto').value,
        auth_key: orNull($('#snmp-auth-key').value), priv_key: orNull($('#snmp-priv-key').value) };
      const at = users.findIndex((u) => u.name === name);
      if (at >= 0) users[at] = edited; else users.push(edited);
    }
    const trapCommunity = orNull($('#snmp-trap-community').value);
    const traps = csv($('#snmp-traps').value).map((address) => {
      const old = snmpTraps.find((t) => t.address === address);
      return old && old.user ? { address, user: old.user } : { address, community: trapCommunity };
    });
    const body = { listen: csv($('#snmp-listen').value), users, traps,
      community: $('#snmp-community-off').checked ? '' : orNull($('#snmp-community').value),
      location: $('#snmp-location').value.trim(), contact: $('#snmp-contact').value.trim() };
    const r = await api('PUT', '/api/v1/monitoring/snmp', body);
    if (!r.ok) {
      monFieldError(ev.target, { listen: '#snmp-listen', community: '#snmp-community', users: '#snmp-user',
        auth_key: '#snmp-auth-key', priv_key: '#snmp-priv-key', traps: '#snmp-traps' }, r);
      showError('#snmp-form-err', r);
      return;
    }
    markInvalid(ev.target, []);
    $('#snmp-form-err').textContent = '';
    showMonitor(r.data);
    say('SNMP agent saved; it applies now.');
  });

  $('#mqtt-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { url: orNull($('#mqtt-url').value), username: $('#mqtt-username').value.trim(),
      password: $('#mqtt-password-off').checked ? '' : orNull($('#mqtt-password').value),
      ca_file: orNull($('#mqtt-ca').value), topic_prefix: orNull($('#mqtt-prefix').value) };
    const r = await api('PUT', '/api/v1/monitoring/mqtt', body);
    if (!r.ok) {
      monFieldError(ev.target, { url: '#mqtt-url', username: '#mqtt-username', password: '#mqtt-password',
        ca_file: '#mqtt-ca', topic_prefix: '#mqtt-prefix' }, r);
      showError('#mqtt-form-err', r);
      return;
    }
    markInvalid(ev.target, []);
    $('#mqtt-form-err').textContent = '';
    showMonitor(r.data);
    say('MQTT saved; it applies now.');
  });

  $('#inv-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const minutes = Number($('#inv-interval').value);
    const errors = Number.isInteger(minutes) && minutes >= 1 && minutes <= 10080 ? []
      : [[$('#inv-interval'), 'enter a whole number of minutes, 1-10080']];
    $('#inv-form-err').textContent = markInvalid(ev.target, errors);
    if (errors.length) return;
    const platforms = invPlatforms.map((p) => ({ name: p.name, address: p.address, admin_url: p.admin_url }));
    const name = $('#inv-name').value.trim();
    if (name) {
      const added = { name, address: $('#inv-address').value.trim(), community: orNull($('#inv-community').value) };
      const at = platforms.findIndex((p) => p.name === name);
      if (at >= 0) platforms[at] = { ...platforms[at], ...added }; else platforms.push(added);
    }
    const r = await api('PUT', '/api/v1/monitoring/inventory', { interval: Math.max(60, minutes * 60), platforms });
    if (!r.ok) {
      monFieldError(ev.target, { interval: '#inv-interval', platforms: '#inv-name', address: '#inv-address',
        community: '#inv-community', name: '#inv-name' }, r);
      showError('#inv-form-err', r);
      return;
    }
    $('#inv-form-err').textContent = '';
    showInventory(r.data);
    say('Inventory settings saved; the LAN platforms are polled now.');
  });

  /* ---------- trace calls ---------- */
  let traceTimer = null;
  const kb = (n) => (n < 1024 ? n + ' bytes' : (n / 1024).toFixed(1) + ' KB');
  const clock = (t) => new Date(t * 1000).toLocaleTimeString();

  function renderTrace(d) {
    clearTimeout(traceTimer);
    const cur = d.current;
    $('#trace-start').hidden = d.running; $('#trace-stop').hidden = !d.running;
    $('#trace-state').textContent = d.running
      ? `${cur.actor === 'cloud' ? 'Started from the cloud: t' : 'T'}racing calls until ${clock(cur.ends_at)} on ${cur.interfaces.join(', ')}: ${cur.packets} packets so far.`
      : (d.captures.length ? 'No call trace running.' : 'No call trace running; no captures yet.');
    $('#trace-files').replaceChildren(...d.captures.flatMap((c) => (c.files || []).map((f) => el('li', {},
      el('a', { href: '/api/v1/trace/download?file=' + encodeURIComponent(f.name), download: f.name,
        text: f.name }),
      ` (${kb(f.bytes)}; ${c.started_at ? clock(c.started_at) : 'unknown start'}; ${c.stop_reason || ''})`))));
    /* While a trace runs, refresh its state as long as the Advanced page is shown. */
    if (d.running) traceTimer = setTimeout(() => { if (!$('#view-advanced').hidden) loadTrace(); }, 5000);
  }

  async function loadTrace() {
    const r = await api('GET', '/api/v1/trace');
    if (isNA(r)) { notAvailable($('#trace-na'), r); return; }
    if (r.ok) renderTrace(r.data); else showError('#trace-form-err', r);
  }

  $('#trace-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('#trace-min');
    const minutes = Number(input.value);
    const errors = Number.isInteger(minutes) && minutes >= 1 && minutes <= 60 ? []
      : [[input, 'enter a whole number of minutes, 1-60']];
    $('#trace-min-err').textContent = errors.length ? errors[0][1] : '';
    $('#trace-form-err').textContent = markInvalid(ev.target, errors);
    if (errors.length) return;
    const r = await api('POST', '/api/v1/trace', { duration_minutes: minutes });
    if (!r.ok) { showError('#trace-form-err', r); return; }
    renderTrace(r.data);
    say('Call trace started.');
    $('#trace-stop').focus();  /* the pressed button is hidden now */
  });

  $('#trace-stop').addEventListener('click', async () => {
    const r = await api('POST', '/api/v1/trace/stop', {});
    if (!r.ok) { showError('#trace-form-err', r); return; }
    $('#trace-form-err').textContent = '';
    renderTrace(r.data);
    say('Call trace stopped; the capture can be downloaded below.');
    $('#trace-start').focus();
  });

  $('#reboot').addEventListener('click', async () => {
    if (!window.confirm('Reboot the gateway now?')) return;
    const r = await api('POST', '/api/v1/system/reboot', {});
    if (!r.ok) { showError('#reboot-err', r); return; }
    $('#reboot-err').textContent = '';
    say('Rebooting in ' + r.data.reboot_in_s + ' s…');
  });

  $('#revert').addEventListener('input', () => { $('#reset-btn').disabled = $('#revert').value !== 'revert'; });
  $('#reset-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await api('POST', '/api/v1/system/factory-reset', { confirm: $('#revert').value });
    if (!r.ok) { showError('#reset-form-err', r); return; }
    $('#reset-form-err').textContent = '';
    say('Resetting to factory defaults: the gateway restarts in a few seconds and asks for the setup code again.');
  });

  /* ---------- overview ---------- */
  function sectionBox(box, s, render) {
    if (!s.available) { notAvailable(box, { status: 501, data: s }); return; }
    box.classList.remove('na');
    if (s.error) { box.replaceChildren(problemBox(s.error.code, s.error.message)); return; }
    render(s.data);
  }

  async function loadOverview() {
    const r = await api('GET', '/api/v1/overview');
    if (!r.ok) { showError('#page-err', r); return; }
    const d = r.data;
    const n = $('#next-step');
    n.classList.toggle('problem', d.next.problem);
    n.replaceChildren(el('h3', { text: d.next.problem ? 'Problem' : 'Next step' }),
      el('p', {}, el('strong', { id: 'next-step-name', text: d.next.step })),
      el('p', { text: d.next.message }), ...nextStepAction(d.next));
    const alerts = $('#alerts');
    alerts.replaceChildren(...d.alerts.map((a) => el('li', { text: `${a.severity}: ${a.message}` })));
    if (!d.alerts.length) alerts.append(el('li', { text: 'No active alerts' }));
    sectionBox($('#ov-link'), d.cloud, (c) => $('#ov-link').replaceChildren(el('p', { text: 'Link: ' + c.link })));
    sectionBox($('#ov-sync'), d.sync, (s) => $('#ov-sync').replaceChildren(
      el('p', { text: 'Last sync: ' + describeSync(s.last_sync) }), el('p', { text: 'Next sync: ' + when(s.next_sync_at) })));
    sectionBox($('#ov-inventory'), d.inventory, (i) => $('#ov-inventory').replaceChildren(
      el('p', { text: `Users: ${i.users}` }), el('p', { text: `DIDs: ${i.dids ?? '—'}` }), ...keptLine(i)));
    /* Inventory Report Submission (the inventory component's status; docs/monitoring.md). */
    const inv = d.components && d.components.inventory;
    if (inv && inv.details) {
      $('#ov-inventory').append(el('p', { id: 'ov-submission', text: 'Inventory Report Submission: Last '
        + when(inv.details.last_submitted) + ', Next ' + when(inv.details.next_submission) }));
    }
    sectionBox($('#tunnels'), d.tunnels, renderTunnels);
    const trunks = d.components && d.components.trunks;
    $('#ov-trunks').replaceChildren(el('p', { text: trunks ? trunks.message : 'Not available yet' }),
      el('a', { href: '#voice', text: 'Go to Voice Gateway' }));
    const service = d.components && d.components.tunnel;
    const listed = d.tunnels.data && d.tunnels.data.tunnels && d.tunnels.data.tunnels.length;
    $('#tunnels-state').textContent = service && listed ? 'Tunnel service: ' + service.message : '';
    loadEvents();
  }

  /* Users kept in the cloud ("Keep these users") that are no longer on the PBX: not in
     "Users", so counted and listed here (GET /api/v1/sync/kept). */
  const KEPT_PAGE = 20;
  function keptLine(i) {
    if (!i.kept) { $('#kept').hidden = true; return []; }
    if (!$('#kept').hidden) keptPager.go(keptPager.offset);  /* still open: refresh it */
    return [el('p', { id: 'ov-kept', text: `${num(i.kept)} ${i.kept === 1 ? 'user' : 'users'} kept in the cloud that ${i.kept === 1 ? 'is' : 'are'} no longer on the PBX.` }),
      el('button', { type: 'button', class: 'secondary', id: 'kept-show', 'aria-controls': 'kept', text: 'List them' })];
  }

  const keptPager = pager(KEPT_PAGE,
    (offset) => api('GET', `/api/v1/sync/kept?offset=${offset}&limit=${KEPT_PAGE}`),
    (r, offset) => {
      if (!r.ok) { showError('#page-err', r); return; }
      const d = r.data;
      $('#kept-list').replaceChildren(...d.users.map((u) => el('li', { text: (u.extension ? u.extension + ' ' : '') + (u.name || u.source_key) + (u.email ? ' <' + u.email + '>' : '') + ', kept ' + when(u.kept_at) })));
      const last = offset + d.users.length;
      $('#kept-page').textContent = `Users ${d.users.length ? offset + 1 : 0}-${last} of ${d.count}`;
      $('#kept-prev').disabled = offset === 0;
      $('#kept-next').disabled = last >= d.count;
      $('#kept').hidden = false;
    });

  $('#ov-inventory').addEventListener('click', (ev) => { if (ev.target.id === 'kept-show') keptPager.go(0, true); });
  $('#kept-prev').addEventListener('click', () => keptPager.prev());
  $('#kept-next').addEventListener('click', () => keptPager.next());

  /* The next step's link; none when it points at the Overview itself (onboarding is
     complete; a problem after it is listed under Alerts, right below). */
  function nextStepAction(next) {
    if (next.page === 'overview') {
      return next.problem ? [el('p', { text: 'See the alerts below.' })] : [];
    }
    return [el('a', { href: '#' + next.page, text: 'Go to ' + (PAGE_NAMES[next.page] || next.page) })];
  }

  /* Tunnels: the tunnel part's own shapes (docs/api.md, "Tunnels"). */
  function bytes(n) {
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let v = Number(n) || 0; let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${i ? v.toFixed(1) : v} ${units[i]}`;
  }

  function renderTunnels(data) {
    const box = $('#tunnels');
    const tunnels = data.tunnels || [];
    if (!tunnels.length) { box.replaceChildren(el('p', { text: 'No tunnels configured' })); return; }
    const focused = document.activeElement && document.activeElement.id;
    const button = (action, t) => {
      const label = action === 'start' ? 'Start' : 'Stop';
      const b = el('button', { type: 'button', class: 'secondary', id: `tunnel-${action}-${t.name}`,
        'aria-label': `${label} ${t.name}`, text: label });
      b.addEventListener('click', () => tunnelAction(action, { name: t.name }));
      return b;
    };
    const body = el('tbody');
    for (const t of tunnels) {
      const target = `${t.target} (${t.host}:${(t.ports || []).join(',')})`;
      const until = t.status === 'started' ? 'Expires ' + when(t.expires_at) : '—';
      body.append(el('tr', {}, el('th', { scope: 'row', text: t.name }), el('td', { text: target }),
        el('td', { text: t.status }), el('td', { text: `${t.streams} (${t.streams_total} total)` }),
        el('td', { text: `↓ ${bytes(t.bytes_from_cloud)} ↑ ${bytes(t.bytes_to_cloud)}` }),
        el('td', {}, el('span', { text: until }), el('br'), el('span', { text: 'Last use ' + when(t.last_use) })),
        el('td', {}, button('start', t), button('stop', t))));
    }
    const all = (a) => { const b = el('button', { type: 'button', id: `tunnels-${a}-all`, text: a === 'start' ? 'Start all' : 'Stop all' });
      b.addEventListener('click', () => tunnelAction(a, { all: true })); return b; };
    const head = el('tr', {}, ...['Tunnel', 'Target', 'Status', 'Streams', 'Bytes', 'Expires / last use', 'Actions']
      .map((h) => el('th', { scope: 'col', text: h })));
    box.replaceChildren(el('div', { class: 'scroll' }, el('table', { id: 'tunnels-table' },
      el('caption', { class: 'sr', text: 'Tunnels: remote access via the cloud' }), el('thead', {}, head), body)),
    all('start'), all('stop'));
    const again = focused && document.getElementById(focused);
    if (again && box.contains(again)) again.focus();
  }

  async function tunnelAction(action, body) {
    const r = await api('POST', '/api/v1/tunnels/' + action, body);
    const what = body.all ? 'All tunnels' : `Tunnel ${body.name}`;
    if (r.ok) {
      $('#tunnels-err').textContent = '';
      say(`${what} ${action === 'start' ? 'started' : 'stopped'}.`);
      loadOverview();
    } else {
      showError('#tunnels-err', r);
    }
  }

  function eventQuery() {
    const q = new URLSearchParams();
    if ($('#ev-asset').value.trim()) q.set('asset', $('#ev-asset').value.trim());
    if ($('#ev-action').value) q.set('action', $('#ev-action').value);
    if ($('#ev-since').value) q.set('since', String(Date.parse($('#ev-since').value) / 1000));
    return q.toString();
  }

  async function loadEvents() {
    const q = eventQuery();
    $('#ev-csv').href = '/api/v1/events.csv' + (q ? '?' + q : '');
    const r = await api('GET', '/api/v1/events' + (q ? '?' + q : ''));
    const body = $('#events tbody');
    if (!r.ok) { body.replaceChildren(); showError('#page-err', r); return; }
    body.replaceChildren(...r.data.events.map((e) => el('tr', {},
      el('td', { text: new Date(e.at * 1000).toLocaleString() }), el('td', { text: e.actor }),
      el('td', { text: e.action }), el('td', { text: e.asset }), el('td', { text: e.subject }),
      el('td', { text: e.properties_changed.join(', ') }))));
  }
  $('#events-form').addEventListener('submit', (ev) => { ev.preventDefault(); loadEvents(); });

  /* ---------- voice gateway: SIP trunks (docs/sip-trunks.md) ---------- */
  async function loadVoice() {
    const r = await api('GET', '/api/v1/trunks');
    if (isNA(r)) { notAvailable($('#trunks-na'), r); return; }
    if (!r.ok) { showError('#trunks-err', r); return; }
    $('#trunks-err').textContent = '';
    renderTrunks(r.data.trunks || []);
  }

  function renderTrunks(trunks) {
    const body = $('#trunks-table tbody');
    if (!trunks.length) {
      body.replaceChildren(el('tr', {}, el('td', { colspan: '8', text: 'No SIP trunks yet: add one below.' })));
      return;
    }
    const action = (label, id, fn, t) => {
      const b = el('button', { type: 'button', class: 'secondary', id: `${id}-${t.name}`,
        'aria-label': `${label} ${t.name}`, text: label });
      b.addEventListener('click', () => fn(t));
      return b;
    };
    body.replaceChildren(...trunks.map((t) => {
      const state = t.state + (t.note ? ` (${t.note})` : '');
      const row = el('tr', { id: `trunk-${t.name}` }, el('th', { scope: 'row', text: t.name }),
        el('td', { text: t.pbx || '—' }), el('td', { text: t.target }),
        el('td', { text: t.transport.toUpperCase() }),
        el('td', { class: 'trunk-state', title: t.reason, text: state }),
        el('td', { text: t.rtt_ms == null ? '—' : `${t.rtt_ms.toFixed(1)} ms` }),
        el('td', { text: when(t.since) }), el('td', {}));
      const cell = row.lastChild;
      cell.append(action('Check now', 'trunk-check', checkTrunk, t));
      if (t.origin === 'manual') {
        cell.append(action('Edit', 'trunk-edit', editTrunk, t), action('Delete', 'trunk-delete', deleteTrunk, t));
      }
      return row;
    }));
  }

  async function checkTrunk(t) {
    const r = await api('POST', '/api/v1/trunks/check', { name: t.name });
    if (!r.ok) { showError('#trunks-err', r); return; }
    say(`Trunk ${t.name}: ${r.data.state}, ${r.data.reason}`);
    loadVoice();
  }

  async function deleteTrunk(t) {
    const r = await api('POST', '/api/v1/trunks', { remove: t.name });
    if (!r.ok) { showError('#trunks-err', r); return; }
    say(`Trunk ${t.name} deleted`);
    loadVoice();
  }

  function editTrunk(t) {
    const form = $('#trunk-form');
    for (const k of ['name', 'host', 'transport', 'pbx', 'server_name', 'interval']) {
      const input = form.querySelector(`[name=${k}]`);
      input.value = t[k] == null ? '' : t[k];
    }
    form.querySelector('[name=port]').value = t.port;
    $('#trunk-name').readOnly = true;
    $('#trunk-replace').value = 'yes';
    $('#trunk-form-h').textContent = `Edit trunk ${t.name}`;
    $('#trunk-save').textContent = 'Save trunk';
    $('#trunk-cancel').hidden = false;
    $('#trunk-host').focus();
  }

  function resetTrunkForm() {
    const form = $('#trunk-form');
    form.reset();
    $('#trunk-name').readOnly = false;
    $('#trunk-replace').value = '';
    $('#trunk-form-h').textContent = 'Add a trunk';
    $('#trunk-save').textContent = 'Add trunk';
    $('#trunk-cancel').hidden = true;
  }
  $('#trunk-cancel').addEventListener('click', resetTrunkForm);

  $('#trunk-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = ev.target;
    for (const box of form.querySelectorAll('.err')) box.textContent = '';
    const msg = markInvalid(form, checkRequired(form));
    $('#trunk-form-err').textContent = msg;
    if (msg) return;
    const data = formData(form);
    const trunk = { name: data.name, host: data.host, transport: data.transport };
    if (data.port) trunk.port = Number(data.port);
    if (data.interval) trunk.interval = Number(data.interval);
    if (trunk.interval && trunk.interval < 5) trunk.timeout = trunk.interval;
    if (data.pbx) trunk.pbx = data.pbx;
    if (data.server_name) trunk.server_name = data.server_name;
    const r = await api('POST', '/api/v1/trunks', { trunk, replace: $('#trunk-replace').value === 'yes' });
    if (!r.ok) {
      /* The trunk part names the field ("port: must be 1-65535"): show it there too. */
      const m = (r.data && r.data.message) || '';
      const field = m.split(':')[0];
      const box = document.getElementById(`trunk-${field}-err`);
      if (box) box.textContent = m;
      showError('#trunk-form-err', r);
      return;
    }
    say(`Trunk ${trunk.name} saved`);
    resetTrunkForm();
    loadVoice();
  });

  /* ---------- phone width: tables as stacked cards (app.css, under 600 px) ---------- */
  /* Each cell carries its column's name as data-label; the tables are rendered by their
     sections, so the labels follow any re-render. */
  function labelCells(table) {
    const names = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
    for (const row of table.querySelectorAll('tbody tr')) {
      [...row.cells].forEach((cell, i) => {
        if (names[i] && cell.dataset.label !== names[i]) cell.dataset.label = names[i];
      });
    }
  }
  const CARD_TABLES = ['#pf-table', '#tunnels-table', '#events'];
  const labelAll = () => {
    for (const sel of CARD_TABLES) { const t = $(sel); if (t) { t.classList.add('cards'); labelCells(t); } }
  };
  new MutationObserver(labelAll).observe($('#main'), { childList: true, subtree: true });

  const LOADERS = { gateway: loadGateway, cloud: loadCloud, pbx: loadPbx, connect: loadConnect,
    voice: loadVoice, deployment: loadDeployment, advanced: loadAdvanced, overview: loadOverview };

  boot();
})();
