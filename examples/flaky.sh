#!/bin/sh
# A flaky job: fails with exit 75 (EX_TEMPFAIL) on its first two attempts.
# longrun tells it which attempt this is through LONGRUN_ATTEMPT.
if [ "${LONGRUN_ATTEMPT:-1}" -lt 3 ]; then
    echo "attempt ${LONGRUN_ATTEMPT:-1}: service unavailable, try again later" >&2
    exit 75
fi
echo "attempt $LONGRUN_ATTEMPT: done"
