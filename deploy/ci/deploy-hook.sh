#!/usr/bin/env bash
# deploy-hook.sh: run a deploy between the two halves of a rekey rotation.
#
#   deploy-hook.sh CREDENTIAL DEPLOY_COMMAND [ARGS...]
#   e.g. REKEY_CONFIG=/etc/rekey/rekey.yaml deploy-hook.sh storefront-api ./deploy.sh production
#
# 1. rekey rotate CREDENTIAL --stage   the new key goes live in every sink; the old key stays valid
# 2. DEPLOY_COMMAND                    the new release starts with the new key
# 3. rekey rotate CREDENTIAL --finish  monitor the health checks, then revoke the old key
#
# If the deploy fails (or the script is interrupted) the rotation is left
# staged and the script exits non-zero without finishing: instances of the
# old release may still use the old key. Re-running the script picks up the
# same staged rotation; left alone, the daemon or the next `rekey run`
# finishes it after the credential's stage_timeout.
#
# Run it where rekey's journal lives (the host of the daemon or timer), so
# the hook shares the journal and its lock. REKEY (default: rekey) names the
# binary.
set -euo pipefail

if [[ $# -lt 2 ]]; then
	echo "usage: $0 CREDENTIAL DEPLOY_COMMAND [ARGS...]" >&2
	exit 2
fi
credential=$1
shift
rekey=${REKEY:-rekey}

stage=started
on_exit() {
	local status=$?
	if [[ $stage != finished ]]; then
		case $stage in
		started) echo "deploy-hook: rekey --stage failed (exit $status); the deploy did not run; see 'rekey status'" >&2 ;;
		staged) echo "deploy-hook: deploy failed or was interrupted (exit $status); rotation of $credential left staged, old key still valid" >&2 ;;
		finishing) echo "deploy-hook: rekey --finish failed (exit $status); see 'rekey history $credential' (a failed rotation was rolled back or needs a person)" >&2 ;;
		esac
		[[ $status -eq 0 ]] && status=1
	fi
	exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$rekey" rotate "$credential" --stage
stage=staged
"$@"
stage=finishing
"$rekey" rotate "$credential" --finish
stage=finished
echo "deploy-hook: deployed; rotation of $credential finished" >&2
