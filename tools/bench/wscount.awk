# wscount.awk - counts wineserver requests per thread and per request kind in a
# WINEDEBUG=+server trace of `apcbench profile` (tools/bench/profile runs it).
#
# Input: first the PROFILE lines of apcbench's stdout ("PROFILE runs N", "PROFILE <phase>
# thread <tid> <role>"), then the trace. A phase is the part of the trace between the named
# events apcbench-profile-<phase>-begin and -end (the marker requests themselves are not
# counted). A request is a line "<tid>: <name>( ...": replies ("<name>() = ...") and
# "*wakeup*" lines are not requests. Threads the PROFILE lines do not name are "t<tid>" (in
# the engine phases: the history thread; in the pipe phases also the pipe server thread, the
# clients and the echo server's threads). Phases named pipe_* are divided by the round trips
# ("PROFILE pipe_runs N"), the others by the runs ("PROFILE runs N").
# Output, one line per phase/role/request: "WSREQ <phase> <role> <request> <count> <per run>",
# then per phase/role and per phase: "WSREQ <phase> <role> total ..." and "WSREQ <phase> all
# total ...".
$1 == "PROFILE" && $2 == "runs" { runs = $3; next }
$1 == "PROFILE" && $2 == "pipe_runs" { pipe_runs = $3; next }
$1 == "PROFILE" && $3 == "thread" { role[$2, $4] = $5; next }
/name=L"apcbench-profile-/ {
  m = $0
  sub(/.*name=L"apcbench-profile-/, "", m)
  sub(/".*/, "", m)
  if (m ~ /-begin$/) { phase = m; sub(/-begin$/, "", phase); skip = 1 }
  else { phase = ""; }
  next
}
phase != "" && /^[0-9a-f]+: [a-z_]+\( / {
  tid = $1; sub(/:$/, "", tid)
  req = $2; sub(/\(.*/, "", req)
  # The marker's own close_handle right after create_event.
  if (skip && req == "close_handle") { skip = 0; next }
  skip = 0
  r = ((phase, tid) in role) ? role[phase, tid] : "t" tid
  if (req == "select" && $0 ~ /timeout=0,/) req = "select(timeout=0)"
  n[phase, r, req]++
  t[phase, r]++
  all[phase]++
  if (!((phase, r) in seen)) { seen[phase, r] = 1; roles[phase] = roles[phase] " " r }
  if (!((phase, r, req) in seenq)) { seenq[phase, r, req] = 1; reqs[phase, r] = reqs[phase, r] " " req }
  if (!(phase in ph)) { ph[phase] = 1; order[++np] = phase }
}
END {
  if (runs == 0) runs = 1
  if (pipe_runs == 0) pipe_runs = 1
  for (i = 1; i <= np; i++) {
    p = order[i]
    per = (p ~ /^pipe/) ? pipe_runs : runs
    k = split(roles[p], rl, " ")
    for (a = 1; a <= k; a++) {
      q = split(reqs[p, rl[a]], rq, " ")
      for (b = 1; b <= q; b++)
        printf "WSREQ %s %s %s %d %.2f\n", p, rl[a], rq[b], n[p, rl[a], rq[b]], n[p, rl[a], rq[b]] / per
      printf "WSREQ %s %s total %d %.2f\n", p, rl[a], t[p, rl[a]], t[p, rl[a]] / per
    }
    printf "WSREQ %s all total %d %.2f\n", p, all[p], all[p] / per
  }
}
