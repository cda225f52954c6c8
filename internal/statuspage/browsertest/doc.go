// Package browsertest loads the daemon's status page in headless Chromium,
// driven by chromedp: the real rekey binary runs against the ApexVerify
// simulator with credentials in different states, and the test checks the
// rendered DOM and saves a screenshot. It is its own module so that
// chromedp stays out of rekey's build; `make test-browser` runs it.
//
// It needs Chromium at /usr/bin/chromium (or $REKEY_CHROMIUM); without it
// the test skips, unless REKEY_REQUIRE_CHROMIUM=1 (CI), when it fails.
package browsertest
