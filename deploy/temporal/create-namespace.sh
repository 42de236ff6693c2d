#!/bin/sh
# One-shot (temporalio/admin-tools): Safeshare's namespace and the search attributes operators
# filter on (SEARCH_ATTRIBUTES="Name=Type ...", from schemas/_search.py). Safe to run again.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${NAMESPACE:?}" "${SEARCH_ATTRIBUTES:?}"

until temporal operator cluster health --address "$TEMPORAL_ADDRESS"; do sleep 2; done

temporal operator namespace describe -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 ||
  temporal operator namespace create -n "$NAMESPACE" --retention "${NAMESPACE_RETENTION:-30d}" \
    --address "$TEMPORAL_ADDRESS"

existing=$(temporal operator search-attribute list -n "$NAMESPACE" --address "$TEMPORAL_ADDRESS")
for pair in $SEARCH_ATTRIBUTES; do
  name=${pair%%=*}
  type=${pair#*=}
  if echo "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create -n "$NAMESPACE" --name "$name" --type "$type" \
      --address "$TEMPORAL_ADDRESS"
  fi
done
echo "namespace $NAMESPACE ready"
