"""`manage.py collect_once`: run one collection cycle now and print one line per member."""

from django.core.management.base import BaseCommand

from monitoring.services import collect_cluster


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args, **options):
        report = collect_cluster()
        if report.skipped:
            self.stdout.write("skipped: another collection of this cluster is running")
            return
        if not report.members:
            self.stdout.write("no members: the cluster was not reached (see logs)")
        for entry in sorted(report.members, key=lambda e: e["name"]):
            state = "up" if entry["up"] else f"down ({entry.get('error', '')})"
            self.stdout.write(f"{entry['name'] or '?'} {entry['member_id']}: {state}")
        self.stdout.write(f"cycle took {report.duration_ms:.0f} ms")
