//! Turning buyer text into terms: lower case, accents and punctuation gone, chat shorthand
//! written out ("gmn" → "bagaimana", "pls" → "please"), stop words dropped, English words
//! stemmed and Indonesian affixes taken off; and the character trigrams of each word, which
//! still match when a word is misspelt.

use rust_stemmers::{Algorithm, Stemmer};
use std::sync::LazyLock;

static ENGLISH: LazyLock<Stemmer> = LazyLock::new(|| Stemmer::create(Algorithm::English));

/// Shorthand and informal spellings seen in marketplace chats, with what they stand for.
const SHORTHAND: &[(&str, &str)] = &[
    // Indonesian
    ("gmn", "bagaimana"),
    ("gimana", "bagaimana"),
    ("bgmn", "bagaimana"),
    ("gmna", "bagaimana"),
    ("udh", "sudah"),
    ("udah", "sudah"),
    ("sdh", "sudah"),
    ("dah", "sudah"),
    ("blm", "belum"),
    ("blum", "belum"),
    ("gak", "tidak"),
    ("ga", "tidak"),
    ("gk", "tidak"),
    ("nggak", "tidak"),
    ("ngga", "tidak"),
    ("enggak", "tidak"),
    ("tdk", "tidak"),
    ("tak", "tidak"),
    ("yg", "yang"),
    ("sy", "saya"),
    ("aku", "saya"),
    ("gw", "saya"),
    ("gue", "saya"),
    ("bs", "bisa"),
    ("bsa", "bisa"),
    ("tp", "tapi"),
    ("tpi", "tapi"),
    ("krn", "karena"),
    ("karna", "karena"),
    ("dgn", "dengan"),
    ("sm", "sama"),
    ("jg", "juga"),
    ("lg", "lagi"),
    ("utk", "untuk"),
    ("buat", "untuk"),
    ("kpn", "kapan"),
    ("brp", "berapa"),
    ("knp", "kenapa"),
    ("dmn", "dimana"),
    ("trs", "terus"),
    ("sampe", "sampai"),
    ("nyampe", "sampai"),
    ("dikirimin", "dikirim"),
    ("voucer", "voucher"),
    ("vocer", "voucher"),
    ("ongkir", "ongkos kirim"),
    ("cod", "cod"),
    // English
    ("u", "you"),
    ("ur", "your"),
    ("r", "are"),
    ("pls", "please"),
    ("plz", "please"),
    ("thx", "thanks"),
    ("hw", "how"),
    ("wat", "what"),
    ("wht", "what"),
    ("wen", "when"),
    ("pwd", "password"),
    ("pw", "password"),
    ("acc", "account"),
    ("acct", "account"),
    ("msg", "message"),
    ("recv", "receive"),
    ("rcvd", "received"),
    ("didnt", "did not"),
    ("dont", "do not"),
    ("doesnt", "does not"),
    ("cant", "can not"),
    ("cannot", "can not"),
    ("wont", "will not"),
    ("isnt", "is not"),
    ("havent", "have not"),
    ("hasnt", "has not"),
    ("im", "i am"),
    ("ive", "i have"),
    ("win", "windows"),
    ("ms", "microsoft"),
];

/// Everyday Indonesian shop words with their English: a question in Indonesian is also read
/// in English, so that it meets an English entry (and the English embedding model) half way.
const GLOSSARY: &[(&str, &str)] = &[
    ("bagaimana", "how"),
    ("cara", "how to"),
    ("caranya", "how to"),
    ("kapan", "when"),
    ("berapa", "how much"),
    ("kenapa", "why"),
    ("dimana", "where"),
    ("mana", "where"),
    ("bisa", "can"),
    ("boleh", "may"),
    ("sudah", "already"),
    ("belum", "not yet"),
    ("tidak", "not"),
    ("bukan", "not"),
    ("masih", "still"),
    ("kode", "code"),
    ("kodenya", "code"),
    ("kirim", "send"),
    ("dikirim", "sent"),
    ("pengiriman", "delivery shipping"),
    ("kiriman", "delivery"),
    ("ulang", "again"),
    ("lagi", "again"),
    ("bayar", "pay"),
    ("dibayar", "paid"),
    ("pembayaran", "payment"),
    ("beli", "buy"),
    ("dibeli", "bought"),
    ("pesanan", "order"),
    ("pesan", "order"),
    ("barang", "item product"),
    ("produk", "product"),
    ("harga", "price"),
    ("murah", "cheap"),
    ("gratis", "free"),
    ("ongkos", "cost"),
    ("biaya", "cost fee"),
    ("potongan", "discount"),
    ("diskon", "discount"),
    ("promo", "promotion discount"),
    ("uang", "money"),
    ("kembali", "back return"),
    ("dikembalikan", "returned refund"),
    ("pengembalian", "return refund"),
    ("retur", "return"),
    ("tukar", "exchange"),
    ("ganti", "change replace"),
    ("diganti", "changed"),
    ("rusak", "damaged broken"),
    ("pecah", "broken"),
    ("bocor", "leaking"),
    ("salah", "wrong"),
    ("hilang", "lost"),
    ("terhapus", "deleted"),
    ("kadaluarsa", "expired"),
    ("kedaluwarsa", "expired"),
    ("expired", "expired"),
    ("habis", "run out expired"),
    ("berlaku", "valid"),
    ("aktif", "active"),
    ("aktivasi", "activate activation"),
    ("mengaktifkan", "activate"),
    ("masuk", "enter log in arrive"),
    ("masukin", "enter"),
    ("memasukkan", "enter"),
    ("dimasukkan", "entered"),
    ("login", "log in"),
    ("akun", "account"),
    ("sandi", "password"),
    ("kata", "word"),
    ("surel", "email"),
    ("pakai", "use"),
    ("dipakai", "used"),
    ("memakai", "use"),
    ("terpakai", "used"),
    ("kepake", "used"),
    ("gunakan", "use"),
    ("digunakan", "used"),
    ("berhasil", "works success"),
    ("gagal", "failed"),
    ("error", "error"),
    ("muncul", "appears"),
    ("tulisan", "message"),
    ("garansi", "warranty guarantee"),
    ("asli", "original genuine"),
    ("palsu", "fake"),
    ("resmi", "official"),
    ("selamanya", "lifetime forever"),
    ("seumur", "lifetime"),
    ("hidup", "life"),
    ("bulan", "month"),
    ("tahun", "year"),
    ("hari", "day"),
    ("jam", "hour"),
    ("menit", "minute"),
    ("minggu", "week"),
    ("luar", "outside abroad"),
    ("negeri", "country"),
    ("negara", "country"),
    ("wilayah", "region"),
    ("daerah", "region area"),
    ("kota", "city"),
    ("perangkat", "device"),
    ("hp", "phone"),
    ("laptop", "laptop"),
    ("komputer", "computer pc"),
    ("baru", "new"),
    ("lama", "long old"),
    ("ulangi", "repeat"),
    ("instal", "install"),
    ("install", "install"),
    ("kunci", "key"),
    ("lisensi", "licence license"),
    ("tagihan", "invoice bill"),
    ("faktur", "invoice"),
    ("nota", "receipt invoice"),
    ("bukti", "proof"),
    ("struk", "receipt"),
    ("kulit", "skin"),
    ("wajah", "face"),
    ("muka", "face"),
    ("berminyak", "oily"),
    ("kering", "dry"),
    ("sensitif", "sensitive"),
    ("jerawat", "acne"),
    ("hamil", "pregnant pregnancy"),
    ("menyusui", "breastfeeding"),
    ("kandungan", "ingredients"),
    ("bahan", "ingredients"),
    ("aman", "safe"),
    ("cocok", "suitable"),
    ("simpan", "store"),
    ("disimpan", "stored"),
    ("penyimpanan", "storage"),
    ("kulkas", "fridge"),
    ("tahan", "lasts"),
    ("dibuka", "opened"),
    ("segel", "seal sealed"),
    ("warna", "colour shade"),
    ("kurir", "courier"),
    ("ekspedisi", "courier shipping"),
    ("resi", "tracking number"),
    ("lacak", "track"),
    ("sampai", "arrive"),
    ("tiba", "arrive"),
    ("paket", "parcel package"),
    ("dus", "box"),
    ("kemasan", "packaging"),
    ("halal", "halal"),
    ("izin", "registration permit"),
    ("terdaftar", "registered"),
    ("keluarga", "family"),
    ("teman", "friend"),
    ("berbagi", "share"),
    ("bareng", "share together"),
    ("sendiri", "own"),
    ("profil", "profile"),
    ("langganan", "subscription"),
    ("berlangganan", "subscribe"),
    ("saldo", "balance"),
    ("isi", "top up fill"),
    ("tukarkan", "redeem"),
    ("menukarkan", "redeem"),
    ("redeem", "redeem"),
    ("kelas", "class course"),
    ("kursus", "course"),
    ("materi", "material lessons"),
    ("tautan", "link"),
    ("link", "link"),
    ("undangan", "invite invitation"),
    ("diundang", "invited"),
    ("minta", "ask request"),
    ("tolong", "please"),
    ("email", "email"),
];

/// Words that say nothing about what is asked, in English and Indonesian (chat particles too).
const STOP: &[&str] = &[
    "a", "an", "the", "is", "are", "am", "was", "were", "be", "been", "to", "of", "in", "on",
    "for", "at", "by", "it", "its", "this", "that", "i", "me", "my", "you", "your", "we", "our",
    "and", "or", "so", "do", "does", "did", "have", "has", "had", "will", "would", "can", "could",
    "please", "hi", "hello", "hey", "thanks", "thank", "just", "there", "with", "from", "about",
    "as", "if", "then", "what", "yang", "dan", "di", "ke", "dari", "ini", "itu", "saya", "kak",
    "kakak", "min", "admin", "gan", "sis", "dong", "deh", "sih", "ya", "yah", "nih", "kok", "kah",
    "lah", "ok", "oke", "halo", "hai", "apa", "apakah", "ada", "mau", "juga", "aja", "saja",
    "tolong", "mohon", "terima", "kasih", "makasih", "nya",
];

/// One word's normal form: accents taken off, lower case, letters and digits only.
fn fold(c: char) -> Option<char> {
    let c = match c {
        'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'À' | 'Á' | 'Â' | 'Ä' | 'Ã' | 'Å' => 'a',
        'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
        'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'Ò' | 'Ó' | 'Ô' | 'Ö' | 'Õ' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
        'ñ' | 'Ñ' => 'n',
        'ç' | 'Ç' => 'c',
        c => c,
    };
    c.is_alphanumeric()
        .then(|| c.to_lowercase().next().unwrap_or(c))
}

/// A letter typed three or more times for emphasis ("pleaseee", "kakkk") counts once.
fn collapse(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars[i..].iter().take_while(|&&c| c == chars[i]).count();
        let keep = if run >= 3 { 1 } else { run };
        out.extend(std::iter::repeat_n(chars[i], keep));
        i += run;
    }
    out
}

/// The words of `text`, folded, with shorthand written out and letters repeated for emphasis
/// counted once.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut Vec<String>| {
        if word.is_empty() {
            return;
        }
        let w = collapse(&std::mem::take(word));
        match SHORTHAND.iter().find(|(k, _)| *k == w) {
            Some((_, long)) => out.extend(long.split(' ').map(str::to_owned)),
            None => out.push(w),
        }
    };
    for c in text.chars() {
        match fold(c) {
            Some(c) => word.push(c),
            None if c == '\'' || c == '’' => {}
            None => flush(&mut word, &mut out),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// Takes common Indonesian affixes off a word (particles, possessives, `-kan`/`-an`,
/// `me-`/`di-`/`ber-`/`ter-`/`pe-`), keeping a stem of at least four letters.
fn indonesian_stem(word: &str) -> String {
    let mut w = word;
    for suffix in ["nya", "lah", "kah", "pun", "ku", "mu"] {
        if let Some(s) = w.strip_suffix(suffix).filter(|s| s.len() >= 4) {
            w = s;
            break;
        }
    }
    for suffix in ["kan", "an"] {
        if let Some(s) = w.strip_suffix(suffix).filter(|s| s.len() >= 4) {
            w = s;
            break;
        }
    }
    // Nasal prefixes swallow the stem's first consonant: mengirim ← kirim, menunggu ←
    // tunggu, memakai ← pakai, menyimpan ← simpan.
    let vowel = |s: &str| s.starts_with(['a', 'e', 'i', 'o', 'u']);
    for (prefix, first) in [
        ("meny", 's'),
        ("peny", 's'),
        ("meng", 'k'),
        ("peng", 'k'),
        ("mem", 'p'),
        ("pem", 'p'),
        ("men", 't'),
        ("pen", 't'),
    ] {
        if let Some(s) = w.strip_prefix(prefix).filter(|s| s.len() >= 3) {
            return if vowel(s) {
                format!("{first}{s}")
            } else {
                s.to_owned()
            };
        }
    }
    for prefix in ["me", "di", "ber", "ter", "per", "pe", "ke"] {
        if let Some(s) = w.strip_prefix(prefix).filter(|s| s.len() >= 4) {
            return s.to_owned();
        }
    }
    w.to_owned()
}

/// The stem a word is indexed under.
fn stem(word: &str) -> String {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return word.to_owned();
    }
    let english = ENGLISH.stem(word);
    if english.len() < word.len() {
        return english.into_owned();
    }
    indonesian_stem(word)
}

/// The English reading of an Indonesian question, word by word from [`GLOSSARY`] (words it
/// does not have are kept); `None` when no word was translated.
pub fn english(text: &str) -> Option<String> {
    let mut changed = false;
    let out: Vec<String> = words(text)
        .into_iter()
        .map(|w| match gloss(&w) {
            Some((id, en)) => {
                changed |= id != en;
                (*en).to_owned()
            }
            None => w,
        })
        .collect();
    changed.then(|| out.join(" "))
}

/// The glossary's entry for a word, or for the word without a particle, possessive or
/// `-in`/`-kan` ending and a `di-`/`ke-`/`ter-` prefix ("dimasukin", "kelasnya").
fn gloss(word: &str) -> Option<&'static (&'static str, &'static str)> {
    let find = |w: &str| GLOSSARY.iter().find(|(id, _)| *id == w);
    let stems = ["nya", "in", "kan", "lah", "kah", "ku", "mu", ""]
        .iter()
        .filter_map(|s| word.strip_suffix(s))
        .filter(|s| s.len() >= 3);
    for stem in stems {
        if let Some(hit) = find(stem) {
            return Some(hit);
        }
        for prefix in ["di", "ke", "ter"] {
            if let Some(hit) = stem
                .strip_prefix(prefix)
                .filter(|s| s.len() >= 3)
                .and_then(find)
            {
                return Some(hit);
            }
        }
    }
    None
}

/// The text and, when it has Indonesian words the glossary knows, its English reading.
pub fn readings(text: &str) -> Vec<String> {
    std::iter::once(text.to_owned())
        .chain(english(text))
        .collect()
}

/// The terms BM25 matches on: stems of the words that are not stop words.
pub fn terms(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| !STOP.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

/// Character trigrams of each non-stop word, with `^`/`$` marking its ends; words of one
/// or two letters give none.
pub fn trigrams(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in words(text) {
        if STOP.contains(&w.as_str()) || w.chars().count() < 3 {
            continue;
        }
        let marked: Vec<char> = std::iter::once('^')
            .chain(w.chars())
            .chain(std::iter::once('$'))
            .collect();
        out.extend(marked.windows(3).map(|t| t.iter().collect::<String>()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_and_emphasis_are_written_out() {
        assert_eq!(
            words("Kak, kode-nya udh dikirim blm?? pleaseee"),
            ["kak", "kode", "nya", "sudah", "dikirim", "belum", "please"]
        );
        assert_eq!(words("Café’s DON'T"), ["cafes", "do", "not"]);
    }

    #[test]
    fn terms_stem_both_languages() {
        assert_eq!(
            terms("Refunds for activated licences"),
            ["refund", "activ", "licenc"]
        );
        assert_eq!(terms("pengiriman kodenya"), ["kirim", "kode"]);
        assert_eq!(terms("the code"), ["code"]);
    }

    #[test]
    fn trigrams_survive_typos() {
        let a = trigrams("activation");
        let b = trigrams("actvation");
        let shared = a.iter().filter(|t| b.contains(t)).count();
        assert!(shared >= 6, "{a:?} {b:?}");
        assert!(trigrams("is it ok").is_empty());
    }
}
