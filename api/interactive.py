"""`turnjudge interview`: an interview in the terminal, through the same facade as the API.

Each question is printed; the candidate types the answer (an empty line is refused, `/stop`
ends the interview). The session is checkpointed in PostgreSQL after every answer, so an
interrupted interview resumes with `turnjudge interview --session ID`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from rich.console import Console

from api.interviews import InterviewService, InterviewStep, SessionReport

STOP_COMMAND = "/stop"

AskAnswer = Callable[[str], Awaitable[str]]


async def read_line(prompt: str) -> str:
    """Read one line from the terminal without blocking the event loop."""
    return await asyncio.to_thread(input, prompt)


async def run_interview(
    interviews: InterviewService,
    step: InterviewStep,
    *,
    ask: AskAnswer = read_line,
    console: Console | None = None,
) -> SessionReport:
    """Ask until the interview ends; return the stored report."""
    console = console or Console()
    console.print(f"session [bold]{step.session_id}[/bold] (type {STOP_COMMAND} to end early)")
    while step.question is not None:
        question = step.question
        category = f" [{question.category}]" if question.category else ""
        console.print(
            f"\n[bold]Q{question.turn}/{question.max_turns}[/bold]{category} {question.question}"
        )
        answer = (await ask("> ")).strip()
        if not answer:
            console.print("an answer cannot be empty (type /stop to end the interview)")
            continue
        if answer == STOP_COMMAND:
            step = await interviews.answer(step.session_id, None, stop=True)
            break
        step = await interviews.answer(step.session_id, answer)
        if step.last_evaluation is not None:
            evaluation = step.last_evaluation
            console.print(f"  -> {evaluation['score']:.1f}/100  {evaluation['analysis']}")
    return await interviews.report(step.session_id)


async def start_or_resume(
    interviews: InterviewService,
    *,
    session_id: uuid.UUID | None,
    participant_id: str,
    position: str,
    language: str,
    max_turns: int,
) -> InterviewStep:
    """The first step: a new session, or where an existing one stands."""
    if session_id is not None:
        return await interviews.pending(session_id)
    return await interviews.start(
        participant_id=participant_id, position=position, language=language, max_turns=max_turns
    )
