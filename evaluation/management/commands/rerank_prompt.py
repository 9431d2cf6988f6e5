"""manage.py rerank_prompt --task TASK [--subtask SUB] --query Q --passage-title T --passage-text P
[--instruction I] [--no-prompt]: the exact prompt the pointwise reranker sees, then one newline."""
from django.core.management.base import BaseCommand, CommandError

from curation import protocol
from curation.protocol import BRIGHT_SUBTASKS, TASKS


class Command(BaseCommand):
    help = ("Print the exact Rank1/LimRank prompt for one (query, passage) pair of a task, as the reference builds "
            "it (task names as the reference spells them: SciFact, NFCorpus, ArguAna, TRECCOVID, ..., "
            "BrightRetrieval --subtask biology, Core17, Robust04, News21).")

    def add_arguments(self, parser):
        parser.add_argument("--task", required=True, help=f"one of: {', '.join(TASKS)}")
        parser.add_argument("--subtask", help=f"BrightRetrieval: {', '.join(BRIGHT_SUBTASKS)}")
        parser.add_argument("--query", required=True)
        parser.add_argument("--passage-title", default="", help="empty: the passage is its text alone")
        parser.add_argument("--passage-text", required=True)
        parser.add_argument("--instruction", default="", help="FollowIR-style: appended to the query")
        parser.add_argument("--no-prompt", action="store_true", help="leave out the task's prompt (the reference's --skip_prompt)")

    def handle(self, *args, **o):
        try:
            task, subtask = protocol.task_normalize(o["task"], o["subtask"])
        except protocol.UnknownTaskError as exc:
            raise CommandError(str(exc)) from exc
        prompt = protocol.prompt_build(query=o["query"], passage_title=o["passage_title"], passage_text=o["passage_text"],
                                       instruction=o["instruction"], task=task, subtask=subtask, no_prompt=o["no_prompt"])
        self.stdout.write(prompt + "\n", ending="")
