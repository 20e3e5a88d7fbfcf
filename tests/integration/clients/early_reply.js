// early_reply.js PORT chunked|length [PAD] - POSTs a 10 MB JSON-typed body
// to http://127.0.0.1:PORT/echo with node's http client, which writes the
// whole body whatever the server answers, and prints the status it saw
// ("error CODE" when the connection failed before any answer). PAD adds a
// header of that many bytes. Used by tests/integration/test_runtime_strict.c:
// a server that answers (413, 431) before the body ends must still have that
// answer read.
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
const mode = process.argv[3];
const body = Buffer.alloc(10 * 1000 * 1000, 'a');
const pad = Number(process.argv[4] || 0);
const headers = { 'content-type': 'application/json' };
if (mode === 'length') headers['content-length'] = body.length;
if (pad) headers['x-pad'] = 'a'.repeat(pad);

let told = false;
function tell(what) {
  if (!told) {
    told = true;
    console.log(what);
  }
}
const req = http.request({
  host: '127.0.0.1', port, method: 'POST', path: '/echo', headers, maxHeaderSize: 65536,
});
req.on('response', (res) => {
  tell(String(res.statusCode));
  res.resume();
});
req.on('error', (e) => tell('error ' + e.code));
req.end(body);
