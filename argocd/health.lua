-- Argo CD health check for modelrollout.io/ModelDeployment (Lua 5.1, as Argo CD runs it).
-- Reads only what the operator writes in status (operator/status.py): phase, reason,
-- message, conditions, observedGeneration, the revisions and versions. Returns
-- {status, message}; the message says what is going on and what a person can do.
local hs = {}

local function text(value)
  if value == nil then
    return "?"
  end
  return tostring(value)
end

local function said(status)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  return text(status.reason)
end

local function plugin(action)
  return " (Argo CD action '" .. action .. "', or kubectl modelrollout " .. action .. ")"
end

-- "20% candidate", "0% candidate, 100% mirrored"
local function share(traffic)
  traffic = traffic or {}
  local words = text(traffic.candidate) .. "% candidate"
  if traffic.mirror ~= nil and traffic.mirror > 0 then
    words = words .. ", " .. text(traffic.mirror) .. "% mirrored"
  end
  return words
end

if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelrollout operator to pick up the ModelDeployment (no status yet)"
  return hs
end

local status = obj.status
local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local observed = status.observedGeneration or 0
if observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. text(generation) ..
    " (it last acted on " .. text(observed) .. ")"
  return hs
end

if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "InvalidSpec" and condition.status == "True" then
      hs.status = "Degraded"
      hs.message = "Invalid spec, fix it in Git: " .. text(condition.message) ..
        " (traffic and revisions are left as they were)"
      return hs
    end
  end
end

local phase = status.phase
local reason = status.reason or ""

if phase == "Degraded" then
  hs.status = "Degraded"
  local guard = status.guard or {}
  if guard.state == "Fired" then
    hs.message = said(status) .. plugin("recover")
  elseif status.abortedRevision ~= nil then
    hs.message = said(status) .. "; stable " .. text(status.stableVersion) ..
      " serves all traffic. Fix the model and change the spec in Git, or retry the same spec" ..
      plugin("retry")
  else
    hs.message = said(status)
  end
  return hs
end

if phase == "Paused" then
  hs.status = "Suspended"
  if reason == "PausedByUser" then
    hs.message = "Paused by a person at " .. share(status.traffic) .. ": resume to go on" .. plugin("resume") ..
      ", or abort" .. plugin("abort")
  elseif reason == "WaitingForPromotion" then
    local what = "preview"
    if status.strategy == "shadow" then
      what = "shadow"
    end
    hs.message = "Waiting for a person: the " .. what .. " of " .. text(status.candidateVersion) ..
      " passed; promote switches all traffic to it" .. plugin("promote") .. ", abort drops it" .. plugin("abort")
  elseif reason == "AnalysisInconclusive" then
    hs.message = said(status) .. " (Argo CD actions 'resume', 'promote', 'abort', or kubectl modelrollout ...)"
  elseif reason == "PausedByStep" then
    hs.message = "Paused at step " .. text((status.currentStep or 0) + 1) .. " (a pause with no duration) at " ..
      share(status.traffic) .. ": resume" .. plugin("resume") .. " or promote" .. plugin("promote") .. " to go on"
  else
    hs.message = said(status)
  end
  return hs
end

if phase == "Progressing" then
  hs.status = "Progressing"
  if status.candidateRevision ~= nil then
    hs.message = "Rolling out " .. text(status.candidateVersion) .. " (" .. share(status.traffic) .. ", stable " ..
      text(status.stableVersion) .. "): " .. said(status)
  elseif status.scaleDowns ~= nil and #status.scaleDowns > 0 then
    hs.message = "Promoted " .. text(status.stableVersion) .. "; keeping the previous revision warm " ..
      "for a quick switch back: " .. said(status)
  elseif reason == "StableReady" then
    hs.message = "Waiting for stable " .. text(status.stableVersion) .. " to be ready: " .. said(status)
  else
    hs.message = said(status)
  end
  return hs
end

if phase == "Healthy" then
  local wanted = nil
  if obj.spec ~= nil and obj.spec.model ~= nil then
    wanted = obj.spec.model.version
  end
  if wanted ~= nil and status.stableVersion ~= wanted then
    hs.status = "Progressing"
    hs.message = "Stable serves " .. text(status.stableVersion) .. ", the spec asks for " .. text(wanted)
    return hs
  end
  hs.status = "Healthy"
  hs.message = "Serving " .. text(status.stableVersion) .. " (revision " .. text(status.stableRevision) ..
    ") with all traffic"
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. text(phase) .. ": " .. said(status)
return hs
