"""Knowledge articles get a help centre address (slug) and a published flag.

The slug is added without any index, filled from each existing title (with -2, -3 ...
where two agents' articles share a title), then made unique.
"""

from django.db import migrations, models
from django.utils.text import slugify


def fill_slugs(apps, schema_editor):
    article_model = apps.get_model("orchestrator", "KnowledgeArticle")
    used: set[str] = set()
    for article in article_model.objects.order_by("id"):
        base = slugify(article.title)[:200].strip("-") or "article"
        slug, n = base, 2
        while slug in used:
            slug, n = f"{base}-{n}", n + 1
        used.add(slug)
        article.slug = slug
        article.save(update_fields=["slug"])


class Migration(migrations.Migration):
    dependencies = [
        ("orchestrator", "0003_health_alerts"),
    ]

    operations = [
        migrations.AddField(
            model_name="knowledgearticle",
            name="published",
            field=models.BooleanField(
                default=True, help_text="Shown on the public help centre and used in answers."
            ),
        ),
        migrations.AddField(
            model_name="knowledgearticle",
            name="slug",
            # No index yet: SlugField's own index and then the unique one would both make
            # PostgreSQL's "_like" index, and the second fails.
            field=models.SlugField(blank=True, db_index=False, default="", max_length=220),
            preserve_default=False,
        ),
        migrations.RunPython(fill_slugs, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="knowledgearticle",
            name="slug",
            field=models.SlugField(
                blank=True,
                help_text="Its address on the help centre; filled from the title when blank.",
                max_length=220,
                unique=True,
            ),
        ),
        migrations.AlterField(
            model_name="knowledgearticle",
            name="body",
            field=models.TextField(help_text="Markdown. Each ## heading starts a section."),
        ),
    ]
