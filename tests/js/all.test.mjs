// `node --test tests/js/` runs the files named like *.test.mjs in this folder; this one loads
// the suites, whose names follow the project's test_*.py style (node's runner skips test_*).
import './test_state.mjs';
import './test_origins.mjs';
import './test_attachments.mjs';
