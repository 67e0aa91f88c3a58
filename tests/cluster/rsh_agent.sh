#!/bin/sh
# Open MPI's remote-start agent for the cluster suite (--mca plm_rsh_agent), in place of ssh:
# `rsh_agent.sh HOST COMMAND...` runs COMMAND inside HOST's namespaces (tests/cluster/cluster.sh
# records each host's anchor PID), through a shell as ssh would.
host=$1
shift
anchor=$(cat "$DAE_CLUSTER_DIR/$host/anchor.pid") || exit 255
exec nsenter --target "$anchor" --net --uts --mount -- /bin/sh -c "$*"
