"""A separate process that starts or finishes an interview through the checkpointed graph.

Used by the durability test: `start` runs until the first interrupt and exits; `finish`
(another process) resumes the same session from its PostgreSQL checkpoint.
Settings come from the environment (DATABASE_URL points at the test database).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

from api.runtime import open_runtime
from api.settings import get_settings


async def main(action: str, session_id: str | None, answers: list[str]) -> None:
    async with open_runtime(get_settings()) as runtime:
        interviews = runtime.interviews
        if action == "start":
            step = await interviews.start(
                participant_id="p-durable",
                position="backend",
                language="en",
                max_turns=len(answers) or 2,
            )
            assert step.question is not None
            print(
                json.dumps({"session_id": str(step.session_id), "question": step.question.question})
            )
            return
        assert session_id is not None
        sid = uuid.UUID(session_id)
        step = await interviews.pending(sid)
        questions = []
        for answer in answers:
            assert step.question is not None
            questions.append(step.question.question)
            step = await interviews.answer(sid, answer)
        print(json.dumps({"status": step.status, "questions": questions}))


if __name__ == "__main__":
    _, action, session, *rest = sys.argv
    asyncio.run(main(action, None if session == "-" else session, rest))
