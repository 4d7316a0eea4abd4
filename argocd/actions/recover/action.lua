-- Argo CD action 'recover' for modelrollout.io/ModelDeployment: what `kubectl modelrollout recover` does.
-- It writes only status.command (Argo CD patches the status subresource), so spec never drifts;
-- the operator carries the command out once and records its id in status.handledCommand.
local os = require("os")
if obj.status == nil then
  obj.status = {}
end
local base = "argocd-recover-" .. os.time()
local id = base
local n = 1
local last = obj.status.command or {}
-- Two clicks in one second still make two commands: an id already used is never reused.
while id == obj.status.handledCommand or id == last.id do
  id = base .. "-" .. n
  n = n + 1
end
obj.status.command = {
  action = "recover",
  id = id,
  requestedAt = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  requestedBy = "argocd",
}
return obj
