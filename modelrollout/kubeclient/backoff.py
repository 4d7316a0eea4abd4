"""How long an informer waits before trying again after a failure: the one policy for the
operator's and the gateway's informers (docs/operator.md, "What talks to the API server").

The step is 0.5 s at first and doubles with each failure in a row, up to 10 s; each wait
is drawn at random from the upper half of its step (0.25 to 0.5 s first, 5 to 10 s at the
cap). Why these numbers:

- 0.5 s first: a dropped connection (an idle cut by a load balancer, one API server
  replica going away) is retried at once, while a fleet of gateways that lost the API
  server together comes back spread over a quarter of a second, not all in one instant.
- 10 s at most: an API server restart (a control-plane upgrade) lasts seconds to a
  minute; after it every client has relisted within 10 s, so the gateway's routes and
  the operator's view of its pods are never much further behind than that. Waiting
  longer (client-go's reflector goes to 30 s) would leave an abort's weights unseen by a
  gateway for that long; a cap of 5 s would have every gateway and operator relist a
  struggling API server (a list of every EndpointSlice, say) twice as often.
- The random half: clients that failed at the same moment do not retry in step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST_SECONDS = 0.5
MAX_SECONDS = 10.0


@dataclass
class Backoff:
    first_seconds: float = FIRST_SECONDS
    max_seconds: float = MAX_SECONDS
    _step: float = field(init=False, repr=False, default=0.0)

    def __post_init__(self) -> None:
        self._step = self.first_seconds

    def pause(self) -> float:
        """The wait before the next attempt, in seconds; the one after it will be about twice as long."""
        step = self._step
        self._step = min(step * 2, self.max_seconds)
        return step * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Things work again: the next failure waits the first step."""
        self._step = self.first_seconds
