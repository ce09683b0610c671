"""The words attacks are made of, in many languages, read as language-free concepts.

The MiniLM encoder the router loads knows English only, and the labelled set has a few
rows per other language: the classifier could not learn "Ignoriere alle vorherigen
Anweisungen" from them. So a message is also read as a sequence of concepts (IGNORE
PREVIOUS INSTRUCTIONS, SHOW YOUR SYSTEM PROMPT, OTHER_PEOPLE PERSONAL_DATA ...) and the
classifier learns on those as well: what it learns from English rows carries over to
every language listed here. Written by hand for this project (MIT).

Latin and Cyrillic entries match at the start of a word (a stem: "instruc" matches
"instructions" and "instrucciones"), accents aside, and as a whole word when they end
with "=", and anywhere inside a word when they start with "~"; entries with spaces match those words in a row; Chinese, Japanese and Korean
entries match anywhere.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


def _terms(text: str) -> tuple[str, ...]:
    """Comma-separated entries (an entry may wrap across lines)."""
    return tuple(" ".join(t.split()) for t in text.split(",") if t.strip())


CONCEPTS: dict[str, tuple[str, ...]] = {
    "IGNORE": _terms(
        """
        ignor, disregard, forget, override, bypass, overrule, set aside, stop following, no
        longer follow, abandon, discard, drop your, skip your, vergiss, vergessen, missacht,
        olvida, olvidar, oublie, oubliez, dimentica, esquec, esqueç, zignoruj, zapomnij,
        pomiń, игнорир, забудь, забыть, проигнорир, negeer, vergeet, unut, görmezden, glöm,
        ignorera, unohda, zapomeň, ignoruj, glem, bỏ qua, quên, تجاهل, انس, 무시, 잊어, 忽略, 无视,
        忘记, 忘掉, 不要理会, 無視, 忘れ
        , hör auf, hör auf dich, stop following, deja de seguir, arrête de suivre, smetti di seguire, pare de seguir, stop met, przestań, перестань, bırak, 不要遵守, 従わないで, pay no attention, forget about, never mind your, drop the rules, drop your rules, w/o, without the checks
        """
    ),
    "PREVIOUS": _terms(
        """
        previous, prior, above, earlier, preceding, original, initial, before this, so far,
        vorherig, vorige, bisherig, obig, anterior, précédent, precedent, ci-dessus,
        precedenti, sopra=, poprzedni, wcześniejsz, предыдущ, прежн, вышеуказ, eerdere,
        bovenstaande, önceki, tidigare, aiemm, předchozí, trước, السابقة, 이전, 之前, 以前, 上面, 先前,
        これまで, 前の, 以前の
        , told to, you were told, were you told, before i started, before my first message, before this conversation, vor diesem gespräch, antes de esta conversación, avant cette conversation, prima di questa conversazione
        """
    ),
    "INSTRUCTIONS": _terms(
        """
        instruction, instrucc, instruct, istruz, instruç, instrukc, instrukt, инструкц,
        указани, directive, directions, anweisung, vorgab, consigne, polecen, talimat, ohje=,
        pokyn, hướng dẫn, تعليمات, 지시, 指令, 指示, 命令, 説明
        , istruzion, anweisungen, consignes, reglas que, regole che, instruções, instrukcje, инструкции, talimatlar, 说明, 规则, what you were told, what they told you, what you've been told, wat ze je, lo que te dijeron, ce qu'on t'a dit
        """
    ),
    "RULES": _terms(
        """
        rule, guideline, polic, restriction, limitation, limits, filter, safeguard, guardrail,
        censor, ethic, moral, regel, einschränkung, beschränkung, regla, restriccion,
        restricción, règle, regole, regra, restri, zasad, ogranicz, reguł, правил, огранич,
        фильтр, kural, kısıtla, sınır, begränsning, sääntö, pravidl, quy tắc, قواعد, 규칙, 제한,
        规则, 限制, 过滤, 约束, ルール, 制限, 規則, フィルター
        , richtlinien, directrices, lignes directrices, linee guida, diretrizes, richtlijnen, wytyczne, правила, yönerge, 准则, ガイドライン, content policy, safety, safeguards, sicherheitsvorkehrung, checks, prüfung, verificación, vérification, controlli, approval step, genehmigung
        """
    ),
    "WITHOUT": _terms(
        """
        without, no more, free of, unrestricted, unfiltered, uncensored, ohne, sin=, sans=,
        senza, sem=, bez=, без=, zonder, utan, ilman, không có, بدون, 없이, 没有, 不受, 无, なし, なく,
        hiçbir, uymadan, siz=
        , no content policy, no policy, no filter, without filter, sans filtre, sin filtro, senza filtri, ohne filter, bez filtr, без фильтр, filtresiz, no tuvieras, sin restricciones, sans restriction, senza restrizioni, ohne einschränkung, bez ograniczeń, без ограничений, kısıtlama olmadan, 没有限制, 制限なし, not have rules, no rules, sin reglas, sans règles, senza regole, ohne regeln, sem regras, zonder regels, bez zasad, без правил, kuralsız, 没有规则
        """
    ),
    "NOW": _terms(
        """
        from now on, now=, henceforth, starting now, ab jetzt, ab sofort, jetzt, a partir de
        ahora, ahora, désormais, maintenant, à partir de maintenant, d'ora in poi, ora sei=, a
        partir de agora, agora, od teraz, teraz, теперь, отныне, с этого момента, vanaf nu, nu
        ben=, artık, şimdi, från och med nu, nyt=, từ giờ, الآن, 지금부터, 现在, 从现在开始, 今から, これから,
        今後
        """
    ),
    "PERSONA": _terms(
        """
        dan=, do anything now, developer mode, dev mode, jailbreak, jailbroken, god mode, act
        as, acting as, pretend, roleplay, role play, play the role, you are now, you're now,
        you are no longer, stay in character, persona=, simulate, evil=, unaligned, du bist
        jetzt, tu so, spiel=, eres=, actúa, finge, tu es maintenant, fais semblant, agis
        comme, sei=, fingi, você é, finja, jesteś, udawaj, ты теперь, притворись, представь,
        je bent nu, doe alsof, sen artık, gibi davran, du är nu, sinä olet, 你是, 扮演, 假装, あなたは今,
        ふり, として振る舞
        , haz como si, haz de cuenta, fais comme si, fai finta, tu finges, doe alsof, udawaj że, сделай вид, gibi yap, interpreta, interprète, interpretiere, spiele, spielst, you're an actor, actor playing, actress, play a hacker, act on your, operating under, as if you were, as if you had, if you had no, what you would say if, would give if, reply you would
        """
    ),
    "AI": _terms(
        """
        ai=, a.i., assistant, chatbot, bot=, model=, llm, gpt, ki-, ki=, ia=, asistente,
        assistente, asystent, ассистент, ии=, нейросет, yapay zeka, asistan, 助手, 人工智能, アシスタント,
        人工知能, ai。, agent=, agents=, the billing agent, the support agent
        """
    ),
    "SYSTEM": _terms(
        """
        system, sys=, systém, système, sistema, systemow, системн, sistem, systeem,
        järjestelmä, hệ thống, النظام, 시스템, 系统, 系統, システム
        """
    ),
    "PROMPT": _terms(
        """
        prompt, pre-prompt, preprompt, context window, initial message, hidden message, hidden
        text, промпт, подсказк, komut, kehote, 提示, 提示词, プロンプト, 프롬프트,
        tool descriptions, exact descriptions, the developers wrote, developer message
        """
    ),
    "SHOW": _terms(
        """
        show, reveal, print, output, display, tell me, tell us, give me, dump, paste, list=,
        list all, export, repeat, copy, send me, send it, leak, expose, write out, spell out,
        read me, read out, what is your, what are your, what's your, share, zeig, gib=, nenn,
        schreib, muestra, muéstr, dame, dime, copia, escrib, montre, donne, affiche, dis-moi,
        révèle, mostra, dimmi, dammi, scriv, rivela, mostre, envie, diga, pokaż, podaj,
        wypisz, powiedz, покажи, дай, выведи, скажи, напиши, пришли, toon, geef, laat zien,
        göster, yazdır, söyle, ver=, visa=, näytä, ukaž, cho tôi, أعطني, اعرض, 보여, 알려, 显示, 告诉,
        输出, 发给, 给我, 打印, 列出, 表示, 教えて, 見せて, 出力,
        what is the, what's the, what are the, actual value, cual es, cuál es, quelle est, quel est, qual e, qual é, was ist, что такое, какой, 是什么, は何
        , wat is, wat zijn, jakie jest, jaki jest, jakie są, nedir, wie lautet, wie heißt, read back, read it back, what did, tell me what, what was, how much does, how much do, who is, which email, what plan, quali sono, qual è, cuáles son, quels sont, welche, geef me, dammi, daj mi
        , envoie, envoyez, envíame, envíamelo, manda, mandami, invia, incolla, copiar, copie, kopier, kopiere, recopie, cita, cite, quote, zitier, wypisz, skopiuj, wyślij, скопируй, процитируй, отправь, stuur, kopieer, gönder, kopyala, 复制, 发送, 引用, コピー, 送って, 引用して, sag mir, sage mir, dime, dimmi, dis-moi, diz-me, me diga, расскажи, vertel, anlat, was steht, qué dice, que dit, cosa dice, what does it say, what's in, what is in, who was, quién fue, qui était, chi era, wer war
        """
    ),
    "VERBATIM": _terms(
        """
        verbatim, word for word, word-for-word, exactly, in full, entire, full text,
        everything, complete, as is, letter for letter, wörtlich, wort für wort, vollständig,
        exactamente, completo, textualmente, en entier, mot pour mot, exactement, intégral,
        tutto, integral, esattamente, exatamente, dokładnie, całość, полностью, дословно,
        целиком, letterlijk, volledig, aynen, tamamen, ordagrant, sanatarkasti, 一字不差, 完整, 原样,
        全部, そのまま, 全文, すべて
        """
    ),
    "YOUR": _terms(
        """
        your, yours, you were given, you received, you've been given, you use, dein, ihre
        anweisung, tus=, tu=, ton=, ta=, tes=, vos=, tuo, tua, tuoi, suas, seu=, sua=, twoj,
        twoje, swój, swoj, твой, твои, свой, свои, jouw, senin, sana=, din=, dina, sinun,
        tvoje, của bạn, 당신, 你的, 您的, 你, あなたの,
        you have, you were, you got, you are running, your own
        , deinen, deine, deiner, deinem, tuas, tus, tes=, vos=, votre, vos, tua=, tuo=, tuoi=, tue=, twoje, twoich, ваши, ваш, uw=, jouw, senin, sizin, te dio, te dieron, ti hanno dato, ti ha dato, on t'a, t'a donné, dir gegeben, hast du, you've been, they gave you, they told you, ur=, u=
        """
    ),
    "MY": _terms(
        """
        my=, mine, mein, meine, meiner, mi=, mis=, mon=, ma=, mes=, mio, mia, miei, meu=,
        minha, mój, moja, moje, mojego, мой, моя, мою, моего, mijn, benim, min=, mitt, minun,
        můj, của tôi, 我的, 私の, 내=
        """
    ),
    "SECRET": _terms(
        """
        api key, api-key, apikey, api_key, secret, password, passwort, passwd, pwd=, token,
        credential, private key, access key, bearer, client secret, env var, environment
        variable, .env, aws=, ssh key, signing key, connection string, schlüssel, geheim,
        zugangsdaten, clave, contraseña, secreta, clé, mot de passe, chiave, segret, senha,
        chave, hasło, hasła, klucz, sekret, пароль, пароли, ключ, токен, секрет, wachtwoord,
        sleutel, geheim, şifre, anahtar, parola, lösenord, nyckel, salasana, avain, heslo,
        klíč, mật khẩu, khóa, كلمة المرور, مفتاح, 비밀번호, 키=, 密钥, 密码, 秘钥, 令牌, 凭证, パスワード, キー, 秘密,
        トークン,
        environ, printenv, sk-, master key, encryption key, authorization header, authorization token, ~passwort, ~kennwort, ~schlüssel, ~password
        , credencial, credenziali, credenciais, identifiants, dane logowania, учетные данные, учётные данные, zugangsdaten
        , pw=, pwd, passcode, passphrase, jeton, gettone, clave api, clé api, chiave api, chave api, api-schlüssel, api-token, klucz api, ключ api, api anahtar, api 密钥, apiキー, zugangsschlüssel, mot de passe, contrasena, senha, wachtwoord, salasana, service account, servicekonto, compte de service, cuenta de servicio, signing secret, webhook secret, os.environ, getenv, process.env
        """
    ),
    "CONFIG": _terms(
        """
        config, settings, setting file, server, backend, database, db=, konfigur, einstellung,
        configuración, paramètres, configurazione, configuração, ustawien, конфигур, настройк,
        instelling, yapılandırma, ayar=, inställning, asetuks, nastavení, cấu hình, 설정, 配置,
        设置, 設定, 構成,
        uses=, you use, the site uses, acme uses, back office, backend, smtp, oauth, webhook, /etc/, ~/, id_rsa
        """
    ),
    "OTHER_PEOPLE": _terms(
        """
        other user, other customer, other people, other client, other account, other compan,
        other workspace, others', another user, another customer, another company, another
        person, someone else, somebody else, everyone, every user, every customer, each user,
        each customer, all users, all customers, all the users, all the customers, all
        clients, all accounts, all the workspaces, all workspaces, any customer, any user,
        last user, previous user, previous customer, before me, my friend, my neighbour, my
        neighbor, my ex, my wife, my husband, my boss, my brother, my sister, my mother, my
        father, competitor, isn't mine, not mine, belongs to, their=, his=, her=, anderen
        kunden, andere kunden, anderer nutzer, anderen nutzer, aller kunden, alle kunden, vor
        mir, des kunden, otros usuarios, otros clientes, todos los clientes, todos los
        usuarios, otro cliente, autres clients, autres utilisateurs, tous les clients, tous
        les utilisateurs, un autre client, altri clienti, altri utenti, tutti i clienti, tutti
        gli, outros clientes, outros usuários, todos os clientes, innych klient, innych
        użytkown, wszystkich klient, wszystkich użytkown, других пользоват, других клиент,
        всех клиент, всех пользоват, чужи, andere klanten, andere gebruikers, alle klanten,
        diğer kullanıcı, diğer müşteri, tüm müşteri, andra kunder, alla kunder, muiden,
        ostatních, người khác, المستخدمين الآخرين, 다른 사용자, 其他用户, 其他客户, 所有用户, 所有客户, 上一个用户, 别人,
        他人, 他のユーザー, 他の顧客, 全ユーザー, 前のユーザー,
        customers=, companies=, users=, clients=, the user who, the person who, the customer who, who was just, who owns, someone's, somebody's, user id, user's, customer's, who else, about someone, other's, Kunden=, clientes=, usuarios=, клиенты, пользователи
        , which customers, which companies, which company, which users, names of, the people who, people who, who opened, who is the owner, whose=, the account that, corp=, inc=, gmbh=, ltd=, colleague's, his name, her name, usuario anterior, utilisateur précédent, cliente anterior, vorherigen kunden, cliente precedente, vorige klant, poprzedniego użytkownika, предыдущего пользователя
        , último cliente, dernier client, ultimo cliente, letzte kunde, letzten kunden, ostatni klient, последний клиент, son müşteri, vorige klant, last person, the person you, person who, people you, whoever, cliente que, client qui, kunde, der vor mir, avant moi, antes que yo, prima di me, przede mną, до меня, benden önce, competitor, konkurrent, concurrent, competidor, concorrente, l'azienda, la empresa, l'entreprise, die firma, het bedrijf, firma=, компания, şirket, 公司, 会社, seats do they, they pay, they have, su cuenta, sa facture, seine rechnung, ihre rechnung, their account, their invoice, their data, their orders
        """
    ),
    "PERSONAL_DATA": _terms(
        """
        personal info, personal data, email, e-mail, phone, address, payment, card=, order
        history, purchase history, conversation, chat log, chat history, transcript, messages,
        tickets, invoices, invoice, billing, refund history, data=, details, profile, name=,
        names, contact, plan she, plan he, what they pay, daten, unterhaltung, gespräch,
        rechnung, datos, correo, factur, conversación, données, adresse, dati, fattur, dados,
        conversa, dane, rozmow, данные, переписк, сч, gegevens, gesprek, veri, konuşma,
        uppgifter, tiedot, dữ liệu, بيانات, 정보, 数据, 资料, 聊天记录, 邮箱, 电话, 地址, 发票, データ, 情報, 履歴, メール
        , ordered, pays=, paid=, renews, order status, who opened
        , fattur, faktur, счет, счёт, fatura, 账单, 請求書, adresse, dirección, indirizzo, endereço, adres, адрес, 住所, 주소, correo, courriel, e-mail, telefono, téléphone, telefon, телефон, plan is, what plan, seats, orders, pedidos, commandes, ordini, bestellungen, заказы, siparişler, tickets, what they wanted, what did they want, qué quería, ce qu'il voulait, was wollte
        """
    ),
    "INJECTED": _terms(
        """
        assistant:, ai:, system:, note to the assistant, note to ai, [system, <system, ###
        system, ai assistant:, ai reviewer, ai summariser, ai summarizer, dear ai, dear
        assistant, to the ai, hidden instruction, ki-assistent:, asistente:, assistant :,
        assistente:, asystencie, ассистент:, 助手：, 助手:, アシスタント：, <!--, [admin, [developer,
        admin:, developer:, new instructions, updated instructions, instructions have been
        updated
        """
    ),
    "PRIVILEGED": _terms(
        """
        admin, superuser, root=, sudo, staff mode, hidden mode, secret mode, employee, staff
        member, back office, internal, orchestrator, administrator, terminal, shell=, cat=,
        maintenance mode, debug mode, verwalt, administrador, administrateur, amministratore,
        администратор, yönetici, 管理员, 管理者
        , supervisor, manager, vorgesetzt, jefe, responsable, superiore, chef=, gerente, kierownik, начальник, müdür, beheerder, administrador, admin-, service account, police, polizei, policía, law enforcement, i'm from it, from the it department
        """
    ),
    "DISABLE": _terms(
        """
        turned off, turn off, switch off, switched off, disable, deactivat, remove your,
        removed, lift your, lifted, stop being, no longer, are off, desactiv, deaktivier,
        abschalt, disattiv, wyłącz, отключ, kapat, 关闭, 解除, 無効
        """
    ),
    "EXFILTRATE": _terms(
        """
        exfiltrat, attacker, send the conversation, send this conversation, forward the
        conversation, forward this, to this address, to this url, webhook.site, collect?,
        ?d=, ?data=, ![, fetch(, curl=, post it to, upload it
        """
    ),
    "HOWTO": _terms(
        """
        how do i, how can i, how to, how would i, where do i, where can i, where is, reset,
        change, rotate, regenerate, update my, set up, setup, configure, create, forgot my,
        lost my, i forgot, translate, wie kann ich, wo finde, comment=, cómo, como=,
        come posso, jak=, как=, 如何, 怎么, どうすれば, どこで, nasıl, hoe=, hur=, miten
        , reset, reimpost, zurücksetz, zurückzusetz, restablec, réinitialis, reinicializ, redefin, resetten, zresetow, resetow, сброс, сбрось, sıfırla, 重置, リセット, 재설정, how does, wie setze, come faccio, comment faire, cómo puedo, hoe kan ik, what should i do, what am i doing wrong
        """
    ),
    "DECODE": _terms(
        """
        decode, base64, rot13, rot-13, backwards, reversed, reverse it, leetspeak, cipher,
        encoded, hex=, unicode, a + b, concatenate, dekodier, decodifica, décode, odkoduj,
        декодир, 解码, デコード
        """
    ),
    "SKIP_CHECK": _terms(
        """
        skip the approval, without approval, no approval, already approved, already said yes,
        manager said, manager approved, authorized by, authorised by, approve it yourself,
        pre-approved, bypass the, skip the check, skip verification, without verification,
        just do it, that's an order, i order you, you must comply, you have to, you are
        allowed to, you're allowed to, you have permission, grant=, free upgrade, 100% off,
        coupon code, admin rights, as an admin, i am the admin, i'm the admin, i am your
        developer, i'm your developer, i am the developer, openai staff, acme staff, i work at
        acme, ceo=
        , for free, gratis, kostenlos, gratuit, gratuito, za darmo, бесплатно, ücretsiz, 免费, 無料, without checking, ohne prüfung, sin verificar, sans vérifier, senza controllo, override code, authorised, authorized, you are authorised, you are authorized, approval already, approve everything, i'm instructing you, i am instructing you, as your supervisor, as your admin, i'm your admin, i am your admin, genehmige, aprueba, approuve, approva, aprove
        """
    ),
    "HARM": _terms(
        """
        napalm, weapon, bomb, explosive, meth, malware, ransomware, keylogger, phishing email,
        hack into, get into an account, break into, steal, activation key, license key,
        crack=, exploit, sql injection, ddos, poison, kill=
        """
    ),
}


def _plain(text: str) -> str:
    """Lower case, accents dropped (CJK and other scripts unchanged)."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


def _is_cjk(term: str) -> bool:
    return any(
        "\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" or "\uac00" <= c <= "\ud7af"
        for c in term
    )


def _word_pattern(term: str) -> str:
    """A Latin or Cyrillic entry: a stem, a whole word when it ends with "=", anywhere in
    a word when it starts with "~" (German compounds: "Datenbankpasswort")."""
    whole, inside = term.endswith("="), term.startswith("~")
    pattern = re.escape(term.strip("=~")).replace(r"\ ", r"\s+")
    if inside:
        pattern = r"\w*" + pattern
    return pattern + r"(?!\w)" if whole else pattern


@lru_cache(maxsize=1)
def _matchers() -> list[tuple[str, re.Pattern[str]]]:
    out = []
    for concept, terms in CONCEPTS.items():
        words, anywhere = [], []
        for term in terms:
            plain = _plain(term)
            (anywhere if _is_cjk(plain) else words).append(plain)
        parts = []
        if words:  # longest first, so "api key" wins over "api"
            escaped = sorted((_word_pattern(w) for w in words), key=len, reverse=True)
            parts.append(r"(?<![\w])(?:" + "|".join(escaped) + ")")
        if anywhere:
            parts.append("(?:" + "|".join(re.escape(w) for w in anywhere) + ")")
        out.append((concept, re.compile("|".join(parts))))
    return out


# Someone's or some company's name: two capitalised words in a row that do not start a
# sentence ("what Maria Schmidt ordered", "how much Umbrella Corp pays"). Latin script
# only; the classifier learns what a name next to other concepts means.
_NAME = re.compile(r"(?<=[^\s.!?:;\"'(\[]\s)[A-Z][a-zà-ÿ]+\s+[A-Z][a-zà-ÿ]+")


def concepts(text: str) -> str:
    """The concepts `text` mentions, in the order they come, as one space-separated string
    ("IGNORE PREVIOUS INSTRUCTIONS"); "" when it mentions none. NAMED is a person's or a
    company's name (see _NAME)."""
    plain = " " + _plain(text) + " "
    found: list[tuple[int, str]] = []
    for concept, pattern in _matchers():
        found.extend((m.start(), concept) for m in pattern.finditer(plain))
    found.extend((m.start() + 1, "NAMED") for m in _NAME.finditer(text))
    found.sort()
    return " ".join(concept for _, concept in found)


# --- High-precision rules --------------------------------------------------------------
# Combinations of concepts that, on the labelled rows, only attacks have (each was checked
# on the dev split: none of its ordinary messages matches one). They block whatever the
# classifier's score, in every language of the lexicon; a message staff marked as a false
# positive is never blocked by them (orchestrator.guardrails). The attack's kind comes
# with the rule.


def _has(found: frozenset[str], *names: str) -> bool:
    return any(name in found for name in names)


RULES: tuple[tuple[str, str, object], ...] = (
    (
        "ignore the instructions",
        "jailbreak",
        lambda c: (
            "IGNORE" in c
            and _has(c, "INSTRUCTIONS", "RULES")
            and _has(c, "PREVIOUS", "YOUR")
            and "MY" not in c
        ),
    ),
    (
        "show the prompt",
        "instruction_leak",
        lambda c: "SHOW" in c and "PROMPT" in c and _has(c, "SYSTEM", "YOUR"),
    ),
    (
        "show your instructions",
        "instruction_leak",
        lambda c: {"SHOW", "YOUR", "INSTRUCTIONS"} <= c and "HOWTO" not in c,
    ),
    (
        "a persona without rules",
        "jailbreak",
        lambda c: "PERSONA" in c and (_has(c, "WITHOUT", "DISABLE") or {"RULES", "IGNORE"} <= c),
    ),
    (
        "show a secret of the system",
        "secrets",
        lambda c: (
            {"SECRET", "SHOW"} <= c
            and _has(c, "PRIVILEGED", "CONFIG", "YOUR")
            and not _has(c, "MY", "HOWTO")
        ),
    ),
    (
        "other people's data",
        "other_users_data",
        lambda c: {"OTHER_PEOPLE", "PERSONAL_DATA", "SHOW"} <= c and not _has(c, "MY", "HOWTO"),
    ),
    (
        "instructions in pasted text",
        "prompt_injection",
        lambda c: "INJECTED" in c and _has(c, "IGNORE", "SHOW"),
    ),
    ("sending data out", "prompt_injection", lambda c: "EXFILTRATE" in c),
    ("decode and obey", "jailbreak", lambda c: "DECODE" in c and _has(c, "IGNORE", "SHOW")),
)


def matching_rule(text: str) -> tuple[str, str] | None:
    """The first rule `text` matches, as (rule, kind); None when it matches none."""
    found = frozenset(concepts(text).split())
    for name, kind, test in RULES:
        if test(found):  # type: ignore[operator]
            return name, kind
    return None
