-- Argo CD action discovery for modelrollout.io/ModelDeployment: the seven commands of
-- `kubectl modelrollout`, each enabled only where the operator would act on it (operator/engine).
local actions = {}
local status = obj.status or {}
local rolling = status.candidateRevision ~= nil
local started = rolling and status.gatePassed == true
local paused_by_user = status.pausedByUser == true
local resumable = status.phase == "Paused" and status.reason ~= "WaitingForPromotion"

-- promote: the current step (pause, analysis, wait) is done now; ignored before the
-- candidate passed its gate and while a person holds the rollout (resume first).
actions["promote"] = {["disabled"] = not started or paused_by_user}
-- promote-full: every step left skipped, the candidate stable at 100%.
actions["promote-full"] = {["disabled"] = not started}
-- abort: all traffic to stable in one write, the candidate scaled down.
actions["abort"] = {["disabled"] = not rolling}
-- pause: hold the traffic where it is until resumed.
actions["pause"] = {["disabled"] = not rolling or paused_by_user}
-- resume: after a pause by a person, a pause step, or an inconclusive analysis.
actions["resume"] = {["disabled"] = not rolling or not (paused_by_user or resumable)}
-- retry: the aborted rollout of this same spec again.
actions["retry"] = {["disabled"] = status.abortedRevision == nil}
-- recover: traffic back from the fallback to the guarded revision, once the guard fired.
local fired = status.guard ~= nil and status.guard.state == "Fired"
actions["recover"] = {["disabled"] = not fired}
return actions
